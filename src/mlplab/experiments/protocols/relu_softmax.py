"""Experiment 3, ``relu-softmax-full-batch``: 784-32-10 ReLU/softmax trained full batch (report 2, part 2).

``as-published`` replays the report's documented choices: gradients divided by 784 (the number
of pixels) instead of the number of samples, one scalar bias per layer shared by all units
(the output bias never moves: its gradient is identically 0), N(0, 1) weights, and the
"accuracy" ``100 - 100 * mean|predicted digit - true digit|`` (a label MAE score, reported next
to real accuracy). ``corrected`` uses mean gradients, per-unit biases, He initialisation, real
accuracy and macro AUC. Epoch budgets come from snapshots of ONE run per learning rate.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.experiments.checkpoint import CheckpointClock, attach, float_back, json_float, snapshots_back
from mlplab.experiments.protocols import common
from mlplab.experiments.protocols.common import ReportParts, metric_summary
from mlplab.experiments.shapes import EPOCH_KEYS, INT, NUMBER, ListOf, MapOf, Maybe, Record, Row
from mlplab.experiments.spec import KeyUse, distinct, list_of, pos_float, section_keys
from mlplab.experiments.sweep import Cell
from mlplab.training import Callback

OPTIONS = {
    "lrs": ([0.05, 0.005], distinct(list_of(pos_float, allow_empty=False))),
}
SEED_PATH = "training.seed"
#: what a cell returns (:func:`_finish`): a cached result is checked against it. The report reads
#: every snapshot's four scores, the costs' iterations and values, and the zero predictor's scores
RESULTS = {"run_cell": common.METRICS.extended({
    "snapshots": MapOf(Record({"train_accuracy": NUMBER, "test_accuracy": NUMBER, "train_mae_score": NUMBER,
                               "test_mae_score": NUMBER, "test_predicted_zero_fraction?": NUMBER}), **EPOCH_KEYS),
    "costs": ListOf(Row(INT, NUMBER, Maybe(NUMBER))),
    "zero_predictor": Record({"train": NUMBER, "test": NUMBER}),
    "stacked_with?": INT,
})}


def key_use(spec) -> KeyUse:
    """Every key reaches every cell but the learning rate (options.lrs) and what the protocols set:
    the loss's denominator, the biases and the initialisation."""
    return KeyUse(read=section_keys() - {"training.lr", "model.loss", "model.shared_bias", "model.init",
                                         "model.init_params"},
                  fixed={"model.loss": "cross_entropy"},
                  hints={"training.lr": "its learning rates are options.lrs",
                         "model.loss": "both protocols train cross-entropy (as-published divides its gradient "
                                       "by 784)",
                         "model.*": "the protocol sets it: as-published N(0, 1) weights and one shared scalar "
                                    "bias per layer, corrected He initialisation and per-unit biases"})


def protocol_config(cfg: dict[str, Any], protocol: str) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    if protocol == "as-published":
        n_features = 784
        cfg["model"].update(loss={"name": "cross_entropy", "denominator": n_features}, shared_bias=True,
                            init="standard_normal", init_params={})
    else:
        cfg["model"].update(loss="cross_entropy", shared_bias=False, init="he", init_params={})
    return cfg


def cells(spec, seeds: int = 1) -> list[Cell]:
    protocols = ["as-published", "corrected"] if spec.protocol == "both" else [spec.protocol]
    out = []
    for proto in protocols:
        for lr in spec.options["lrs"]:
            cfg = {sec: copy.deepcopy(spec.sections[sec]) for sec in ("data", "split", "preprocessing", "model", "training")}
            cfg["training"]["lr"] = float(lr)
            cfg = protocol_config(cfg, proto)
            cfg["options"] = {"protocol": proto}
            out.append(Cell(name=f"{proto}/lr={lr:g}", kind="relu_softmax:run_cell", config=cfg,
                            seed=cfg["training"]["seed"], tags={"protocol": proto, "lr": float(lr)},
                            stack_kind="relu_softmax:run_stack", stack_varies=STACK_VARIES,
                            cost=float(cfg["training"]["epochs"])))
    return out


#: what may differ between the cells of one stack (full batch: the seed only sets the weights)
STACK_VARIES = ("training.lr", "training.seed", "model.init", "model.init_params")


def mae_score(pred: np.ndarray, y: np.ndarray) -> float:
    """The report's "accuracy": ``100 - 100 * mean|pred - y|`` on digit labels (not an accuracy)."""
    return float(100.0 - 100.0 * np.mean(np.abs(pred.astype(np.float64) - y)))


def clipped_cost(net, X: np.ndarray, y: np.ndarray) -> float:
    """The report's cost: mean cross-entropy of the softmax clipped to [1e-8, 1 - 1e-8]."""
    p = net.predict_scores(X).astype(np.float64)
    p = np.clip(p[np.arange(len(y)), y], 1e-8, 1 - 1e-8)
    return float(-np.mean(np.log(p)))


class Budgets(Callback):
    def __init__(self, data, epochs: list[int], cost_every: int):
        self.data, self.epochs, self.cost_every = data, set(epochs), cost_every
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.costs: list[tuple[int, float, float]] = []  # (iteration, clipped cost, mlplab loss)

    def on_train_begin(self, trainer):
        if not self.costs:
            self.costs.append((0, clipped_cost(trainer.net, self.data.X_train, self.data.y_train), float("nan")))

    def on_epoch_end(self, trainer, logs):
        e = logs["epoch"]
        net = trainer.net
        if self.cost_every and e % self.cost_every == 0:
            self.costs.append((e, clipped_cost(net, self.data.X_train, self.data.y_train), float(logs["loss"])))
        if e in self.epochs:
            ptr, pte = net.predict(self.data.X_train), net.predict(self.data.X_test)
            self.snapshots[e] = {
                "train_accuracy": float(np.mean(ptr == self.data.y_train)),
                "test_accuracy": float(np.mean(pte == self.data.y_test)),
                "train_mae_score": mae_score(ptr, self.data.y_train),
                "test_mae_score": mae_score(pte, self.data.y_test),
                "test_predicted_zero_fraction": float(np.mean(pte == 0)),
            }

    def cell_state(self):
        return {"snapshots": {str(k): v for k, v in self.snapshots.items()},
                "costs": [[i, json_float(c), json_float(m)] for i, c, m in self.costs]}

    def load_cell_state(self, state):
        self.snapshots = snapshots_back(state["snapshots"], self.epochs)
        self.costs = [(int(i), float_back(c), float_back(m)) for i, c, m in state["costs"]]


def budgets(cfg: dict[str, Any]) -> list[int]:
    """The epoch budgets a cell snapshots: ``training.record_epochs`` and the last epoch."""
    t = cfg["training"]
    return sorted(set(t["record_epochs"]) | {t["epochs"]})


def _setup(cfg: dict[str, Any], data):
    net = common.build_net(cfg, data.X_train.shape[1], len(data.class_names))
    t = cfg["training"]
    cb = Budgets(data, budgets(cfg), t["cost_every"])
    trainer = common.build_trainer(cfg, net, [cb], divergence_factor=None)
    return trainer, cb


def _finish(cfg: dict[str, Any], data, trainer, cb: Budgets, out: Path, stacked: int = 1) -> dict[str, Any]:
    net = trainer.net
    train_time = float(sum(trainer.history.time_s))
    extra = {"snapshots": {str(k): v for k, v in sorted(cb.snapshots.items())},
             "costs": [[i, c, (None if not np.isfinite(m) else m)] for i, c, m in cb.costs],
             "zero_predictor_mae_score": {"train": mae_score(np.zeros_like(data.y_train), data.y_train),
                                          "test": mae_score(np.zeros_like(data.y_test), data.y_test)},
             "stacked_with": stacked}
    metrics = common.finish_run(out, net, data, cfg, trainer, train_time, extra=extra)
    res = metric_summary(metrics)
    res.update(snapshots=extra["snapshots"], costs=extra["costs"], zero_predictor=extra["zero_predictor_mae_score"],
               stacked_with=stacked)
    return res


def run_cell(cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    data = common.prepare(cfg)
    trainer, cb = _setup(cfg, data)
    ck = attach(out, trainer, {"budgets": cb})
    trainer.fit(data.X_train, data.y_train, cfg["training"]["epochs"])
    res = _finish(cfg, data, trainer, cb, out)
    ck.clear()
    return res


def run_stack(cfgs: list[dict[str, Any]], outs: list[Path]) -> list[Any]:
    """Cells that differ only in learning rate / initialisation, trained as one stacked model."""
    from mlplab.stacked import train_stacked

    data = common.prepare(cfgs[0])  # the stack key guarantees the same data for all
    pairs = [_setup(cfg, data) for cfg in cfgs]
    clock = CheckpointClock()  # the whole stack checkpoints at the same epoch
    cks = [attach(out, tr, {"budgets": cb}, clock) for (tr, cb), out in zip(pairs, outs)]
    errors = train_stacked([tr for tr, _ in pairs], data.X_train, data.y_train, cfgs[0]["training"]["epochs"])
    results = [err if err is not None else _finish(cfg, data, tr, cb, out, stacked=len(cfgs))
               for cfg, (tr, cb), out, err in zip(cfgs, pairs, outs, errors)]
    for ck in cks:
        ck.clear()
    return results


def report(spec, results, out: Path, aggregates: dict[str, Any]) -> ReportParts:
    from mlplab import plots

    from mlplab.experiments.sweep import diverged, mean_sd

    pub = spec.report.get("published", {})
    first: dict[tuple[str, float], Any] = {}
    every: dict[tuple[str, float], list[Any]] = {}  # every seed's result, per (protocol, lr)
    for r in results:
        first.setdefault((r.cell.tags["protocol"], r.cell.tags["lr"]), r)
        every.setdefault((r.cell.tags["protocol"], r.cell.tags["lr"]), []).append(r)
    trained = [r for r in results if not diverged(r.result)]
    n_seeds = max((len(v) for v in every.values()), default=1)
    over = f", mean ± sd over {n_seeds} seeds" if n_seeds > 1 else ""

    def seeds_of(key: tuple[str, float], value, scale: float = 100.0, digits: int = 2) -> str:
        """``value(result)`` over the seeds of ``key`` that trained: the value, or mean ± sd for
        several seeds; "diverged" when every seed diverged, "not run" when there is no such cell."""
        rs = every.get(key)
        if not rs:
            return "not run"
        ok = [r for r in rs if not diverged(r.result)]
        vals = [value(r.result) for r in ok]
        return common.pm_seeds(mean_sd([v for v in vals if v is not None]), len(rs) - len(ok), len(rs), scale, digits)

    def snap(e: int, k: str):
        return lambda res: (res["snapshots"].get(str(e)) or {}).get(k)

    header = ["lr", "epochs", "published score train / test", f"reproduced (as-published) score train / test{over}",
              f"as-published real accuracy test (%){over}", f"corrected accuracy train / test (%){over}"]
    rows = []
    for lr in spec.options["lrs"]:
        ka, kc = ("as-published", float(lr)), ("corrected", float(lr))
        runs = every.get(ka, []) + every.get(kc, [])
        if not runs:
            continue
        # the budgets the cells snapshot (every cell of the spec has the same; a diverged cell has none)
        epochs = sorted({int(e) for r in runs if not diverged(r.result) for e in r.result["snapshots"]}) \
            or budgets(runs[0].cell.config)
        for e in epochs:
            p = pub.get(f"lr{lr:g}", {}).get(str(e))
            rows.append([f"{lr:g}", str(e), f"{p[0]:.2f} / {p[1]:.2f}" if p else "n/a",
                         common.pair(seeds_of(ka, snap(e, "train_mae_score"), 1.0),
                                     seeds_of(ka, snap(e, "test_mae_score"), 1.0)) if ka in every else "not run",
                         seeds_of(ka, snap(e, "test_accuracy")),
                         common.pair(seeds_of(kc, snap(e, "train_accuracy")), seeds_of(kc, snap(e, "test_accuracy")))
                         if kc in every else "not run"])
    blocks: list[tuple] = []
    zp = trained[0].result["zero_predictor"] if trained else None
    if zp:
        blocks.append(("p", f"A network that predicts 0 for every image scores exactly {zp['train']:.2f} / "
                            f"{zp['test']:.2f} (train / test) on this data with the report's metric; the report "
                            "printed -345.39 / -344.34 for lr 0.05 at 1,000 and 2,000 epochs."))
    blocks.append(("p", "Why the two protocols differ: the report's 'accuracy' is 100 * (1 - mean |predicted digit "
                        "- true digit|), a label-distance score that goes negative, not a fraction of correct "
                        "predictions. Its gradients were divided by 784 (pixels) instead of 60,000 (samples), so "
                        "every step was about 76.5 times too large (lr 0.05 behaves like 3.8): with N(0, 1) "
                        "weights the ReLU units die and the network collapses to a constant prediction. Its "
                        "biases were one scalar per layer, and the output bias never moved because the softmax "
                        "gradient summed over classes is zero. With mean gradients, per-unit biases and He "
                        "initialisation the same architecture learns normally."))
    results_rows = []
    for (proto, lr), r in sorted(first.items()):
        k = (proto, lr)
        results_rows.append([proto, f"{lr:g}", seeds_of(k, lambda res: res["test_accuracy"]),
                             seeds_of(k, lambda res: res.get("test_auc_ovr_macro"), 1.0, 4),
                             seeds_of(k, lambda res: res.get("training_time_s"), 1.0, 1)])
    blocks.append(("table", ["protocol", "lr", f"final test accuracy (%){over}", f"macro AUC OvR{over}",
                             f"train time (s){over}"], results_rows))
    if n_seeds > 1:
        blocks.append(("p", f"The tables above show mean ± sd over the {n_seeds} seeds of every cell that trained; "
                            "the figures below show the first seed of each."))
    for proto in ("as-published", "corrected"):
        runs = [r for (p, _), r in first.items() if p == proto]
        if not runs:
            continue
        res = [r for r in runs if not diverged(r.result)]
        gone = [f"{r.cell.tags['lr']:g}" for r in runs if diverged(r.result)]
        if not res:
            blocks.append(("p", f"{proto}: the cell of every learning rate ({', '.join(gone)}) diverged, so there "
                                "are no figures of this protocol (see the diverged cells below)."))
            continue
        left_out = f" (lr {', '.join(gone)} diverged: left out)" if gone else ""
        key = "mae_score" if proto == "as-published" else "accuracy"
        scale = 1.0 if proto == "as-published" else 100.0
        sweep = [{"lr": r.cell.tags["lr"], "epochs": int(e), "train": scale * s[f"train_{key}"],
                  "test": scale * s[f"test_{key}"]} for r in res for e, s in r.result["snapshots"].items()]
        name = f"budgets_{proto}.png"
        what = "label-MAE score" if proto == "as-published" else "accuracy (%)"
        plots.sweep_accuracy_vs_epochs(sweep, out / "figures" / name, metric_name=what,
                                       title=f"{spec.name}, {proto} protocol: {what} by epoch budget "
                                             "(snapshots of one run per learning rate)")
        blocks.append(("img", f"{proto}: {'score' if proto == 'as-published' else 'accuracy'} against epoch budget"
                              f"{left_out}", f"figures/{name}"))
        curves = {f"lr {r.cell.tags['lr']:g}": ([c[0] for c in r.result["costs"]], [c[1] for c in r.result["costs"]])
                  for r in res}
        name = f"cost_{proto}.png"
        # Budgets records the cost after every cost_every-th epoch: one step each only when full batch
        full_batch = not res[0].cell.config["training"]["batch_size"]
        unit = "iteration" if full_batch else "epoch"
        plots.cost_curves(curves, out / "figures" / name,
                          xlabel="iteration (full batch: one per epoch)" if full_batch else "epoch",
                          title=f"{proto}: cost (clipped cross-entropy) every "
                                f"{spec.sections['training']['cost_every']} {unit}s")
        blocks.append(("img", f"{proto}: cost curves{left_out}", f"figures/{name}"))
    return ReportParts(comparison=(header, rows), blocks=blocks)
