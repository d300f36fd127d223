"""Experiment 1, ``two-hidden-layers``: the textbook MLP (Raschka et al., ch. 11) extended to two
hidden layers, as in report 1 (Sbeh & Buium).

``as-published`` replays the original random streams:

* split: scikit-learn ``train_test_split(test_size=0.3, random_state=123, stratify=y)`` over
  the 70,000 images in original order (train then test), in scikit-learn's shuffled order;
* weights: legacy ``np.random.RandomState(123).normal(0, 0.1, size=(out, in))`` drawn layer by
  layer in order (W_h, W_h2, W_out), transposed into mlplab's (in, out) layout, biases 0;
* minibatches: the global RNG after ``np.random.seed(123)`` (here a dedicated
  ``RandomState(123)`` replaying the same stream): each epoch ``shuffle(arange(49000))`` for
  training (last partial batch dropped), then the per-epoch evaluation passes
  ``compute_mse_and_acc`` on train and on test each consume one ``shuffle(arange(n))``.
* ``options.initial_eval``: whether the initial test evaluation (printed "test MSE 0.2,
  accuracy 9.9%") consumed a shuffle after the seed was set (``after-seed``) or ran before
  ``np.random.seed(123)`` as in the textbook (``before-seed``). Both were tried on the full
  run; the spec keeps the one whose per-epoch curve matches the published one (see the spec).
* ``options.replay_dtype``: the original NumPy code computed in float64; float32 (the default,
  twice as fast) and float64 both reproduce every published per-epoch accuracy to its printed
  two decimals on the full run (largest difference 0.005 points, i.e. rounding).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.experiments.checkpoint import attach
from mlplab.experiments.protocols import common
from mlplab.experiments.protocols.common import ReportParts, metric_summary, num
from mlplab.experiments.shapes import NUMBER, ListOf, Maybe, Record, Where
from mlplab.experiments.spec import (
    KeyUse, boolean, choice, compact_keys, distinct, list_of, pos_int, section_keys, toml_value,
)
from mlplab.experiments.sweep import Cell, diverged
from mlplab.training import Callback, History

OPTIONS = {
    "initial_eval": ("before-seed", choice("before-seed", "after-seed")),
    "models": (["model1-textbook", "model1", "two-hidden", "model2-mlplab", "model2-torch"],
               distinct(list_of(choice("model1-textbook", "model1", "two-hidden", "model2-mlplab", "model2-torch")))),
    "model1_hidden": ([50], list_of(pos_int)),
    "model2_optimizer": ("rmsprop", choice("rmsprop", "adam", "sgd")),
    "model2_lr": (0.001, lambda v: None if isinstance(v, (int, float)) and v > 0 else "must be > 0"),
    "model2_init": ("glorot", lambda v: None if isinstance(v, str) else "must be a string"),
    "torch": (True, boolean),
    "replay_dtype": ("float32", choice("float32", "float64")),
}
SEED_PATH = "training.seed"
#: the replay's per-epoch curve: four lists of one length (the report compares them epoch by epoch)
_CURVE_KEYS = ("train_accuracy", "eval_accuracy", "train_mse", "eval_mse")
_CURVE = Where(Record({k: ListOf(NUMBER, min_len=1) for k in _CURVE_KEYS}),
               lambda c: len({len(c[k]) for k in _CURVE_KEYS}) == 1, "holds lists of different lengths")
#: what the cells return (:func:`replay_cell`, :func:`torch_cell`; Model 2 (mlplab) and the
#: corrected cells are generic cells): a cached result is checked against it. The report reads
#: the replay's curve, initial evaluation and confusion matrix, and PyTorch's inference time
RESULTS = {
    "replay_cell": common.METRICS.extended({"initial_mse": NUMBER, "initial_accuracy": NUMBER, "curve": _CURVE,
                                            "confusion_matrix": common.CONFUSION_MATRIX}),
    "torch_cell": common.METRICS.extended({"inference_s_all_torch?": Maybe(NUMBER),
                                           "confusion_matrix?": common.CONFUSION_MATRIX,
                                           "epoch_losses?": ListOf(NUMBER)}),
}

#: the report's labels (its own architectures and recipe); :func:`label` writes a cell's from
#: what it trained, which gives these for the report's settings
LABELS = {
    "model1-textbook": "Model 1: 784-50-10, textbook split 55k/5k/10k",
    "model1": "Model 1: 784-50-10, 70/30 split",
    "two-hidden": "2-hidden: 784-500-500-10",
    "model2-mlplab": "Model 2 (mlplab): 784-500-500-10 sigmoid, softmax CE, RMSprop",
    "model2-torch": "Model 2 (PyTorch): same recipe",
}
_OPTIMIZER_NAMES = {"rmsprop": "RMSprop", "adam": "Adam", "sgd": "SGD"}


def _base(spec) -> dict[str, Any]:
    return {sec: copy.deepcopy(spec.sections[sec]) for sec in ("data", "split", "preprocessing", "model", "training")}


def planned(spec) -> list[tuple[str, str]]:
    """The cells the spec asks for, as (model, protocol): the NumPy models' replay
    ("as-published") and corrected cells as the protocol says, then Model 2 ("seeded"; its
    PyTorch cell if options.torch)."""
    models = spec.options["models"]
    protocols = [p for p in ("as-published", "corrected") if spec.protocol in (p, "both")]
    out = [(m, p) for m in ("model1-textbook", "model1", "two-hidden") if m in models for p in protocols]
    out += [(m, "seeded") for m in ("model2-mlplab", "model2-torch")
            if m in models and (m == "model2-mlplab" or spec.options["torch"])]
    return out


def cells(spec, seeds: int = 1) -> list[Cell]:
    from mlplab.experiments.protocols.torch_ref import available

    out: list[Cell] = []
    for m, proto in planned(spec):
        tags = {"model": m, "protocol": proto}
        if proto == "seeded":
            cfg = _model2_config(spec)
            if m == "model2-mlplab":
                out.append(Cell(name=m, kind="generic:run_cell", config=cfg, seed=cfg["training"]["seed"], tags=tags,
                                cost=common.estimated_cost(cfg, factor=1.3)))  # RMSprop's elementwise passes
            elif available():
                out.append(Cell(name=m, kind="two_hidden:torch_cell", config=cfg, seed=cfg["training"]["seed"],
                                tags=tags, cost=common.estimated_cost(cfg, factor=2.0)))  # autograd, eval per epoch
            continue
        cfg = _base(spec)
        if m.startswith("model1"):
            cfg["model"]["hidden"] = list(spec.options["model1_hidden"])
        if m == "model1-textbook":
            cfg["split"]["kind"] = "textbook"
        if proto == "as-published":
            cfg["options"] = {"initial_eval": spec.options["initial_eval"]}
            cfg["preprocessing"]["dtype"] = spec.options["replay_dtype"]
            cfg["training"]["drop_last"] = True  # the textbook generator's
            out.append(Cell(name=f"{m}/as-published", kind="two_hidden:replay_cell", config=cfg,
                            seed=cfg["training"]["seed"], tags=tags,
                            cost=common.estimated_cost(cfg, factor=1.5)))  # + evaluation passes every epoch
        else:
            cfg["training"]["drop_last"] = False
            cfg["options"] = {}
            out.append(Cell(name=f"{m}/corrected", kind="generic:run_cell", config=cfg,
                            seed=cfg["training"]["seed"], tags=tags, cost=common.estimated_cost(cfg)))
    return out


def _model2_config(spec) -> dict[str, Any]:
    cfg = _base(spec)
    cfg["preprocessing"]["dtype"] = "float32"
    cfg["model"].update(output_activation="softmax", loss="cross_entropy", init=spec.options["model2_init"],
                        init_params={})
    cfg["training"].update(optimizer=spec.options["model2_optimizer"], lr=float(spec.options["model2_lr"]),
                           drop_last=False)
    cfg["options"] = {}
    return cfg


# ----------------------------------------------------------------------------- which keys reach which cells

#: the report's settings, which the as-published replay hard-codes (the textbook's NeuralNetMLP:
#: sigmoid everywhere, MSE, legacy N(0, 0.1) weights, no regularisation; its generator's split
#: and dropped last batch). With the replay in the protocol a spec may state these values only.
REPLAY_SETTINGS: dict[str, Any] = {
    "split.kind": "sklearn", "split.validation_fraction": 0.0,
    "model.hidden_activation": "sigmoid", "model.output_activation": "sigmoid", "model.loss": "mse",
    "model.init": "normal", "model.init_params": {"std": 0.1}, "model.dropout": 0.0, "model.l2": 0.0,
    "model.shared_bias": False, "training.drop_last": True,
}
#: what Model 2's cells set themselves (its recipe is options.model2_*; float32 as the report's tensors)
MODEL2_SETS = {"preprocessing.dtype", "model.output_activation", "model.loss", "model.init", "model.init_params",
               "training.optimizer", "training.lr", "training.drop_last"}
_REPLAY_READS = section_keys("data") | {
    "split.test_fraction", "split.seed", "preprocessing.scaling", "model.hidden", "training.optimizer",
    "training.optimizer_params", "training.lr", "training.batch_size", "training.epochs", "training.seed",
    "training.schedule", "training.schedule_params"}
_TORCH_READS = section_keys("data", "split") | {
    "preprocessing.scaling", "model.hidden", "model.hidden_activation", "training.optimizer_params",
    "training.batch_size", "training.epochs", "training.seed"}


def cell_keys(model: str, protocol: str) -> set[str]:
    """The spec keys a (model, protocol) cell reads; it sets the others itself."""
    if model == "model2-torch":
        keys = set(_TORCH_READS)
    elif model == "model2-mlplab":
        keys = section_keys() - MODEL2_SETS
    elif protocol == "as-published":
        keys = set(_REPLAY_READS)
    else:  # corrected: mlplab's own streams, every row of each epoch
        keys = section_keys() - {"training.drop_last"}
    if model.startswith("model1"):
        keys.discard("model.hidden")  # options.model1_hidden
    if model == "model1-textbook":
        keys -= {"split.kind", "split.test_fraction"}  # the textbook's 55k/5k/10k split
    return keys


def key_use(spec) -> KeyUse:
    """Keys some planned cell reads; with the replay in the protocol, the report's settings it
    hard-codes (:data:`REPLAY_SETTINGS`) may be stated with the report's values only."""
    cells_ = planned(spec)
    read = set().union(*(cell_keys(m, p) for m, p in cells_))
    replay = any(p == "as-published" for _, p in cells_)
    fixed = dict(REPLAY_SETTINGS) if replay else {}
    if "preprocessing.dtype" not in read:
        fixed["preprocessing.dtype"] = "float32"  # Model 2's (the replay's is options.replay_dtype)
    hints = dict.fromkeys(REPLAY_SETTINGS, "the as-published replay hard-codes the report's settings; protocol = "
                                           "\"corrected\" trains other values") if replay else {}
    hints.update({"training.drop_last": "the replay drops the last partial batch as the report's generator did; "
                                        "the corrected and Model 2 cells use every row",
                  "preprocessing.dtype": "the replay computes in options.replay_dtype, Model 2 in float32",
                  "model.hidden": "Model 1's layers are options.model1_hidden",
                  "*": "no cell of options.models reads it under this protocol; Model 2's recipe is "
                       "options.model2_*"})
    return KeyUse(read=read, fixed=fixed, hints=hints)


def key_use_rows(spec) -> list[list[str]]:
    """Per planned cell: the spec keys it reads, and what it uses instead of the others."""
    rows = []
    for m, p in planned(spec):
        if m == "model2-torch":
            own = ["options.model2_optimizer, model2_lr", "PyTorch's own initialisation", "softmax + cross-entropy",
                   "float32", "no dropout, L2 or schedule"]
        elif m == "model2-mlplab":
            own = ["options.model2_optimizer, model2_lr, model2_init", "softmax + cross-entropy", "float32"]
        elif p == "as-published":
            own = [f"{k} = {toml_value(v)}" for k, v in REPLAY_SETTINGS.items()
                   if not (m == "model1-textbook" and k == "split.kind")]
            own.append("preprocessing.dtype = options.replay_dtype")
        else:
            own = ["training.drop_last = false"]
        if m.startswith("model1"):
            own.append("model.hidden = options.model1_hidden")
        if m == "model1-textbook":
            own.append('split.kind = "textbook"')
        rows.append([m if p == "seeded" else f"{m}/{p}", compact_keys(cell_keys(m, p)), "; ".join(own)])
    return rows


# ----------------------------------------------------------------------------- the replay


def _replay_data(cfg: dict[str, Any]):
    """(PreparedData with the test part as test, X_eval/y_eval of the per-epoch pass, desc)."""
    from mlplab.data import data_record, splits
    from mlplab.data.preprocessing import Scaler
    from mlplab.runs import PreparedData, split_record

    ds = common.dataset(cfg["data"]["dataset"], cfg["data"].get("data_dir"))
    X_all, y_all = splits.all_samples(ds)
    seed = cfg["split"]["seed"]
    if cfg["split"]["kind"] == "textbook":
        sp = splits.textbook_split(ds, random_state=seed)
        tr, ev, te = sp.train, sp.valid, sp.test
        desc = f"textbook 55k/5k/10k (train_test_split twice, random_state={seed})"
    else:
        tr, te = splits.sklearn_train_test_split_indices(len(y_all), y_all, cfg["split"]["test_fraction"], seed)
        ev = te
        desc = (f"train_test_split(test_size={cfg['split']['test_fraction']}, random_state={seed}, stratify=y) "
                f"over all {len(y_all)}: {len(tr)}/{len(te)}, scikit-learn order")
    # data.max_train_samples / max_test_samples: the same stratified subsets the other cells take
    # (common.prepare), so every column of the report is on the same rows; the replayed streams
    # then run over the subset (no longer the published run: the report says so)
    d = cfg["data"]
    n_split_train, n_split_test = len(tr), len(te)
    if d.get("max_train_samples") or d.get("max_test_samples"):
        tr = common._subset(np.asarray(tr), y_all, d.get("max_train_samples"), seed)
        sub_te = common._subset(np.asarray(te), y_all, d.get("max_test_samples"), seed)
        if ev is te:
            ev = sub_te
        te = sub_te
        desc += f", subsets {len(tr)}/{len(te)}"
    scaler = Scaler(cfg["preprocessing"]["scaling"], pixel_max=ds.pixel_max).fit(X_all[tr])
    dt = np.dtype(cfg["preprocessing"].get("dtype", "float64"))
    data = PreparedData(
        X_train=scaler.transform(X_all[tr], dtype=dt), y_train=np.ascontiguousarray(y_all[tr], dtype=np.int64),
        X_val=None, y_val=None, X_test=scaler.transform(X_all[te], dtype=dt), y_test=np.asarray(y_all[te], np.int64),
        test_images=np.asarray(X_all[te]), scaler=scaler, image_shape=tuple(ds.image_shape),
        class_names=[str(c) for c in ds.class_names], dataset_name=ds.name, source=str(ds.source), split_desc=desc,
        # what `mlplab evaluate` rebuilds (no validation rows are taken out of training here)
        split=split_record(cfg["split"]["kind"], cfg["split"].get("test_fraction", 0.3), seed,
                           d.get("max_test_samples") if len(te) < n_split_test else None,
                           d.get("max_train_samples") if len(tr) < n_split_train else None),
        data_record=data_record(ds))
    X_eval = data.X_test if ev is te else scaler.transform(X_all[ev], dtype=dt)
    return data, X_eval, np.asarray(y_all[ev], np.int64)


def legacy_weights(sizes: list[int], seed: int, std: float = 0.1) -> list[np.ndarray]:
    """The textbook's ``RandomState(seed).normal(0, std, size=(out, in))`` per layer, in order,
    transposed to (in, out); zero biases. Returns W0, b0, W1, b1, ..."""
    rs = np.random.RandomState(seed)
    params: list[np.ndarray] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(np.ascontiguousarray(rs.normal(loc=0.0, scale=std, size=(fan_out, fan_in)).T))
        params.append(np.zeros(fan_out))
    return params


class ShuffleStream:
    """The global RNG stream of the textbook's code, on a dedicated ``RandomState``."""

    def __init__(self, seed: int):
        self.rs = np.random.RandomState(seed)
        self.draws = 0

    def shuffled(self, n: int) -> np.ndarray:
        idx = np.arange(n)
        self.rs.shuffle(idx)
        self.draws += 1
        return idx

    def batch_order(self, epoch: int, n: int) -> np.ndarray:
        return self.shuffled(n)

    def cell_state(self):
        name, keys, pos, has_gauss, cached = self.rs.get_state()
        return {"keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
                "draws": self.draws}

    def load_cell_state(self, state):
        self.rs.set_state(("MT19937", np.asarray(state["keys"], dtype=np.uint32), int(state["pos"]),
                           int(state["has_gauss"]), float(state["cached_gaussian"])))
        self.draws = int(state["draws"])


def textbook_eval(net, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``compute_mse_and_acc``: mean over minibatches of 100 of mean((a - onehot)^2), and accuracy,
    over the complete minibatches.

    When n is a multiple of 100 (every published set: 49,000 / 21,000 / 5,000 / 10,000) all rows
    count and the values do not depend on the order of the rows. Otherwise the last ``n % 100``
    rows *in the given order* are left out, so the values depend on that order, and they differ
    from the original's, whose generator left out the last partial batch of a fresh shuffle
    (other rows each pass): only ``data.max_*_samples`` subsets are affected, whose curves the
    report already labels as not the published run's."""
    n = (len(y) // 100) * 100
    a = net.decision_function(X[:n])
    onehot = np.eye(a.shape[1])[y[:n]]
    mse = float(np.mean(((a - onehot) ** 2).reshape(-1, 100, a.shape[1]).mean(axis=(1, 2))))
    acc = float(np.mean(a.argmax(1) == y[:n]))
    return mse, acc


class ReplayEvaluation(Callback):
    """Per epoch: the textbook's evaluation passes on train and on the eval set, each consuming
    one shuffle of the stream (:func:`textbook_eval` scores the rows in their given order)."""

    def __init__(self, stream: ShuffleStream, X_train, y_train, X_eval, y_eval):
        self.stream = stream
        self.X_train, self.y_train, self.X_eval, self.y_eval = X_train, y_train, X_eval, y_eval

    def on_epoch_end(self, trainer, logs):
        logs["loss"], logs["accuracy"] = textbook_eval(trainer.net, self.X_train, self.y_train)
        self.stream.shuffled(len(self.y_train))
        logs["val_loss"], logs["val_accuracy"] = textbook_eval(trainer.net, self.X_eval, self.y_eval)
        self.stream.shuffled(len(self.y_eval))


def replay_cell(cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    from mlplab.metrics import chunked_ovr_auc
    from mlplab.network import MLP

    data, X_eval, y_eval = _replay_data(cfg)
    t = cfg["training"]
    sizes = [data.X_train.shape[1], *cfg["model"]["hidden"], len(data.class_names)]
    net = MLP(sizes, "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1},
              dtype=cfg["preprocessing"].get("dtype", "float64"),
              seed=t["seed"])
    net.set_weights(legacy_weights(sizes, t["seed"]))
    init_mse, init_acc = textbook_eval(net, X_eval, y_eval)
    stream = ShuffleStream(t["seed"])  # np.random.seed(123)
    if cfg["options"]["initial_eval"] == "after-seed":
        stream.shuffled(len(y_eval))
    cb = ReplayEvaluation(stream, data.X_train, data.y_train, X_eval, y_eval)
    trainer = common.build_trainer(cfg, net, [cb], batch_order=stream.batch_order, train_metrics="none",
                                   divergence_factor=None)
    trainer.drop_last = True
    ck = attach(out, trainer, {"stream": stream})  # the per-epoch values are in the trainer's history
    trainer.fit(data.X_train, data.y_train, t["epochs"])
    train_time = float(sum(trainer.history.time_s))
    scores = net.predict_scores(data.X_test)  # raw sigmoid outputs, as the report's AUC used
    chunk = chunked_ovr_auc(data.y_test, scores, chunk=100)
    extra = {"chunked_auc": chunk, "initial_eval": {"mse": init_mse, "accuracy": init_acc},
             "replay": {"shuffles_drawn": stream.draws, "initial_eval": cfg["options"]["initial_eval"]},
             "curve": {"train_accuracy": list(trainer.history.accuracy),
                       "eval_accuracy": list(trainer.history.val_accuracy),
                       "train_mse": list(trainer.history.loss), "eval_mse": list(trainer.history.val_loss)}}
    metrics = common.finish_run(out, net, data, cfg, trainer, train_time, extra=extra)
    res = metric_summary(metrics)
    res.update(chunked_auc=chunk["value"], initial_mse=init_mse, initial_accuracy=init_acc,
               curve=extra["curve"], classification_report=metrics["test"]["classification_report"],
               confusion_matrix=metrics["test"]["confusion_matrix"])
    ck.clear()
    return res


# ----------------------------------------------------------------------------- PyTorch


def torch_cell(cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    from mlplab.experiments.protocols.torch_ref import train_torch
    from mlplab.timing import measure_inference

    data = common.prepare(cfg)
    t = cfg["training"]
    sizes = [data.X_train.shape[1], *cfg["model"]["hidden"], len(data.class_names)]
    # no per-epoch test pass: the report printed only the epoch losses, and the mlplab model has none
    res = train_torch(sizes, cfg["model"]["hidden_activation"], {"name": t["optimizer"], "lr": t["lr"],
                      **t["optimizer_params"]}, t["batch_size"], t["epochs"], t["seed"],
                      data.X_train, data.y_train, None, None)
    net = common.build_net(cfg, sizes[0], sizes[-1])
    net.set_weights(res["weights"])
    torch_inference = measure_inference(res["predict"], data.X_test, batch_sizes=(None,), repeats=5)
    metrics = common.finish_run(out, net, data, cfg, None, res["train_time_s"],
                                extra={"trained_with": f"torch {res['torch_version']}",
                                       "inference_torch": torch_inference, "epochs_run": t["epochs"]})
    h = History.from_dict({"epoch": res["history"]["epoch"], "loss": res["history"]["loss"],
                           "accuracy": res["history"]["accuracy"], "val_accuracy": res["history"]["val_accuracy"],
                           "time_s": res["history"]["time_s"], "val_loss": [None] * t["epochs"],
                           "lr": [t["lr"]] * t["epochs"]})
    from mlplab.io import atomic_write_text

    atomic_write_text(out / "history.csv", h.to_csv())
    from mlplab.report import write_run_report

    write_run_report(out)
    summary = metric_summary(metrics)
    summary["inference_s_all_torch"] = torch_inference["all"]["median_s"]
    summary["chunked_auc"] = metrics["chunked_auc"]["value"]
    summary["classification_report"] = metrics["test"]["classification_report"]
    summary["confusion_matrix"] = metrics["test"]["confusion_matrix"]
    summary["epoch_losses"] = res["history"]["loss"]
    return summary


# ----------------------------------------------------------------------------- report


def parse_curve(text: str) -> tuple[list[float], list[float]]:
    tr, te = [], []
    for pair in text.split():
        a, b = pair.split("/")
        tr.append(float(a))
        te.append(float(b))
    return tr, te


def _find(results, model: str, protocol: str | None = None):
    """The first cell of ``model`` (and ``protocol``) that trained, else its first (diverged) one, else None."""
    found = [r for r in results
             if r.cell.tags.get("model") == model and (protocol is None or r.cell.tags.get("protocol") == protocol)]
    return next((r for r in found if not diverged(r.result)), found[0] if found else None)


def _accuracy(aggregates: dict[str, Any], r) -> str:
    """Test accuracy (%) of ``r``'s group: mean ± sd over the seeds that trained, "diverged" if none did."""
    agg = aggregates.get(r.cell.group, {})
    return common.pm_seeds(agg.get("metrics", {}).get("test_accuracy"), agg.get("n_diverged", 0),
                           agg.get("n_seeds", 0))


def _auc_cells(r) -> list[str]:
    """The chunk-averaged, whole-set OvR and whole-set OvO macro AUCs of the cell ``r``."""
    if r is None:
        return ["not run"] * 3
    if diverged(r.result):
        return ["diverged"] * 3
    test = common_metrics(r)["test"]
    chunk = r.result.get("chunked_auc")
    if chunk is None and (r.folder / "predictions.npz").exists():
        from mlplab.metrics import chunked_ovr_auc

        with np.load(r.folder / "predictions.npz") as p:  # softmax models: proba are the scores
            chunk = chunked_ovr_auc(p["y_true"], p["proba"], chunk=100)["value"]
    return [num(chunk, 5), num(test.get("roc_auc_ovr_macro"), 5), num(test.get("roc_auc_ovo_macro"), 5)]


def _inference_cell(r) -> str:
    """The forward pass alone over the whole test set (median of 5): PyTorch's own for the
    PyTorch model, mlplab's ``predict_proba`` for the others."""
    if diverged(r.result):
        return "diverged"
    if r.cell.tags.get("model") == "model2-torch":
        return f"{num(r.result.get('inference_s_all_torch'), 3)} (PyTorch)"
    return f"{num(r.result.get('inference_s_all'), 3)} (mlplab)"


def common_metrics(r) -> dict[str, Any]:
    import json

    return json.loads((r.folder / "metrics.json").read_text())


def label(model: str, r) -> str:
    """The report's row label for the cell ``r`` of ``model``, with the architecture it trained
    (its metrics.json's ``model``, e.g. ``64-8-8-10 sigmoid/softmax cross_entropy``), its split
    fraction and Model 2's hidden activation and optimizer: a spec with other sizes is not
    labelled with the report's 784-500-500-10 (:data:`LABELS` where nothing is recorded; the
    model's name for a diverged cell, which has no metrics.json)."""
    try:
        arch, acts = str(common_metrics(r)["model"]).split()[:2]
    except (OSError, ValueError, KeyError, TypeError):
        return model if diverged(getattr(r, "result", None)) else LABELS[model]
    cfg = r.cell.config
    if model == "model1-textbook":
        return f"Model 1: {arch}, textbook split 55k/5k/10k"
    if model == "model1":
        tf = (cfg.get("split") or {}).get("test_fraction")
        if not isinstance(tf, (int, float)):
            return f"Model 1: {arch}"
        return f"Model 1: {arch}, {round(100 * (1 - tf), 1):g}/{round(100 * tf, 1):g} split"
    if model == "two-hidden":
        return f"2-hidden: {arch}"
    if model == "model2-mlplab":
        opt = str((cfg.get("training") or {}).get("optimizer"))
        return f"Model 2 (mlplab): {arch} {acts.split('/')[0]}, softmax CE, {_OPTIMIZER_NAMES.get(opt, opt)}"
    return LABELS[model]


def report(spec, results, out: Path, aggregates: dict[str, Any]) -> ReportParts:
    from mlplab import plots

    pub = spec.report.get("published", {})
    pacc = pub.get("accuracy", {})
    pauc = pub.get("auc", {})
    pinf = pub.get("inference_s", {})
    header = ["model", "published accuracy (%)", "reproduced (as-published) accuracy (%)",
              "corrected-protocol accuracy (%)", "published macro AUC", "chunk-average AUC (report's definition)",
              "AUC OvR macro, whole test set", "AUC OvO macro, whole test set",
              "published inference (s, forward pass + confusion matrix + classification report)",
              "inference alone (s, forward pass over the whole test set, median of 5)"]
    rows = []
    for model in ("model1-textbook", "model1", "two-hidden", "model2-torch", "model2-mlplab"):
        rep = _find(results, model, "as-published") or _find(results, model, "seeded")
        cor = _find(results, model, "corrected")
        if rep is None and cor is None:
            continue
        main = rep or cor
        named = next((r for r in (rep, cor) if r is not None and not diverged(r.result)), main)  # its metrics.json
        rep_acc = _accuracy(aggregates, rep) if rep is not None else "not run"
        cor_acc = "n/a"
        if cor is not None:
            cor_acc = _accuracy(aggregates, cor)
        elif model.startswith("model2"):
            cor_acc = rep_acc + " (seeded; the original was not)"
        rows.append([label(model, named), num(pacc.get(model), 2) if pacc.get(model) is not None else "n/a",
                     rep_acc, cor_acc, num(pauc.get(model)) if pauc.get(model) is not None else "not reported",
                     *_auc_cells(main), num(pinf.get(model), 2) if pinf.get(model) is not None else "n/a",
                     _inference_cell(main)])
    blocks: list[tuple] = []
    summary: dict[str, Any] = {}
    blocks.append(("p", "AUC definitions: the report's 2-hidden AUC (0.9967) is the mean over 210 consecutive "
                        "chunks of 100 test rows of the per-chunk macro one-vs-rest AUC, computed here on the raw "
                        "sigmoid outputs; its Model 2 AUC (0.9995) is the one-vs-one macro AUC over the whole "
                        "test set. Its inference times (PyTorch's for Model 2) included building the confusion "
                        "matrix and the classification report. The last column times the forward pass alone over "
                        "the whole test set in one call, median of 5, on the cell's BLAS / PyTorch threads: "
                        "mlplab's predict_proba for the NumPy models and Model 2 (mlplab), PyTorch's own forward "
                        "pass with softmax (float32, no gradients) for Model 2 (PyTorch), whose weights mlplab "
                        "also copied to score it (that copy's time is in its cell's metrics.json, "
                        "inference.all)."))
    blocks.append(("h3", "Spec keys per cell"))
    blocks.append(("p", "Which keys of the spec reach each cell; each cell uses the settings of the last column "
                        "instead of the spec's other keys. With the as-published replay in the protocol, a spec "
                        "may state the report's settings only (other values are refused)."))
    summary["spec_keys_per_cell"] = {row[0]: {"reads": row[1], "uses": row[2]} for row in key_use_rows(spec)}
    blocks.append(("table", ["cell", "spec keys it reads", "what it uses instead of the others"],
                   key_use_rows(spec)))
    # ---- the per-epoch curve
    two = _find(results, "two-hidden", "as-published")
    curve_text = pub.get("curve")
    if two is not None and curve_text and diverged(two.result):
        summary["curve_match"] = {"diverged": diverged(two.result)}
        blocks.append(("h2", "2-hidden: per-epoch accuracy against the published curve"))
        blocks.append(("p", f"The 2-hidden as-published replay diverged ({diverged(two.result)}), so there is no "
                            "per-epoch curve, figure or milestone to compare with the published ones."))
    elif two is not None and curve_text:
        ptr, pte = parse_curve(curve_text)
        c = two.result["curve"]
        n = min(len(ptr), len(c["train_accuracy"]))
        d_tr = [abs(100 * c["train_accuracy"][i] - ptr[i]) for i in range(n)]
        d_te = [abs(100 * c["eval_accuracy"][i] - pte[i]) for i in range(n)]
        worst = max(range(n), key=lambda i: max(d_tr[i], d_te[i]))
        summary["curve_match"] = {"epochs_compared": n, "max_abs_diff_train_pp": max(d_tr),
                                  "max_abs_diff_test_pp": max(d_te), "worst_epoch": worst + 1,
                                  "initial_eval": spec.options["initial_eval"]}
        blocks.append(("h2", "2-hidden: per-epoch accuracy against the published curve"))
        d = spec.sections["data"]
        if d.get("max_train_samples") or d.get("max_test_samples"):
            blocks.append(("p", f"data.max_train_samples = {d.get('max_train_samples')}, data.max_test_samples = "
                                f"{d.get('max_test_samples')}: every cell, the replay included, ran on these "
                                "subsets, so the replayed curve is not the published run's."))
        blocks.append(("p", f"Largest per-epoch difference over {n} epochs: train {max(d_tr):.2f} points, "
                            f"test {max(d_te):.2f} points (epoch {worst + 1}); initial-evaluation order: "
                            f"{spec.options['initial_eval']} (the shuffle stream is replayed exactly; remaining "
                            "differences come from floating-point summation order)."))
        trows = [[str(i + 1), f"{ptr[i]:.2f}", f"{100 * c['train_accuracy'][i]:.2f}", f"{pte[i]:.2f}",
                  f"{100 * c['eval_accuracy'][i]:.2f}", f"{max(d_tr[i], d_te[i]):.2f}"] for i in range(n)]
        blocks.append(("table", ["epoch", "published train", "reproduced train", "published test",
                                 "reproduced test", "max |diff|"], trows))
        hist = {"epoch": list(range(1, len(c["train_accuracy"]) + 1)), "loss": c["train_mse"],
                "accuracy": c["train_accuracy"], "val_loss": c["eval_mse"], "val_accuracy": c["eval_accuracy"]}
        plots.training_curves(hist, out / "figures" / "two_hidden_curves.png",
                              published={"epoch": list(range(1, len(ptr) + 1)), "accuracy": [v / 100 for v in ptr],
                                         "val_accuracy": [v / 100 for v in pte], "label": "published"})
        blocks.append(("img", "2-hidden: training curves (validation = the test set, as in the report), "
                              "published curve dashed", "figures/two_hidden_curves.png"))
        ms = pub.get("milestones", {})
        cm = two.result["confusion_matrix"]
        mrows = [["initial test MSE / accuracy (%)", f"{ms.get('initial_mse', 'n/a')} / {ms.get('initial_accuracy', 'n/a')}",
                  f"{two.result['initial_mse']:.2f} / {100 * two.result['initial_accuracy']:.1f}"]]
        for e in (10, 30):
            if len(c["eval_accuracy"]) >= e:
                mrows.append([f"test accuracy at epoch {e} (%)", str(ms.get(f"epoch{e}", "n/a")),
                              f"{100 * c['eval_accuracy'][e - 1]:.2f}"])
        mrows.append(["final train accuracy (%)", str(ms.get("final_train", "n/a")), f"{100 * c['train_accuracy'][-1]:.2f}"])
        mrows.append(["class 0: correct of support", str(ms.get("class0", "n/a")), f"{cm[0][0]} of {sum(cm[0])}"])
        blocks.append(("table", ["milestone", "published", "reproduced"], mrows))
    # ---- classification reports and confusion matrices
    for model in ("two-hidden", "model2-torch", "model2-mlplab", "model1", "model1-textbook"):
        found = [r for r in (_find(results, model, p) for p in ("as-published", "seeded", "corrected")) if r is not None]
        if not found:
            continue
        r = next((r for r in found if not diverged(r.result)), found[0])
        if diverged(r.result):
            blocks.append(("h3", f"{label(model, r)}: classification report (test)"))
            blocks.append(("p", f"Every {model} cell diverged, so there is no classification report or confusion "
                                "matrix (see the diverged cells below)."))
            continue
        rep = r.result.get("classification_report") or common_metrics(r)["test"]["classification_report"]
        name = label(model, r)
        blocks.append(("h3", f"{name}: classification report (test)"))
        crow = []
        for k, v in rep.items():
            if isinstance(v, dict):
                crow.append([k, num(v.get("precision"), 2), num(v.get("recall"), 2), num(v.get("f1-score"), 2),
                             str(v.get("support"))])
        blocks.append(("table", ["class", "precision", "recall", "f1", "support"], crow))
        rel = r.folder.relative_to(out)
        for fig, cap in (("confusion_matrix.png", "confusion matrix"), ("roc_curves.png", "ROC curves")):
            if (r.folder / "figures" / fig).exists():
                blocks.append(("img", f"{name}: {cap}", f"{rel}/figures/{fig}"))
    # ---- comparison bars
    names, accs, aucs, aucs_ovo, gone = [], [], [], [], []
    for model in ("model1", "two-hidden", "model2-torch", "model2-mlplab"):
        r = _find(results, model, "as-published") or _find(results, model, "seeded")
        if r is None:
            continue
        if diverged(r.result):
            gone.append(model)
            continue
        names.append(model)
        accs.append(r.result["test_accuracy"])
        aucs.append(r.result.get("test_auc_ovr_macro"))
        aucs_ovo.append(r.result.get("test_auc_ovo_macro"))
    if names:
        plots.comparison_bars(names, {"accuracy": accs, "AUC OvR macro": aucs, "AUC OvO macro": aucs_ovo},
                              out / "figures" / "comparison.png", title="Test accuracy and macro AUC")
        left_out = f" ({', '.join(gone)} diverged: left out)" if gone else ""
        blocks.append(("img", f"Comparison of the models (test set){left_out}", "figures/comparison.png"))
    elif gone:
        blocks.append(("p", f"Every model of the comparison figure diverged ({', '.join(gone)}), so there is no "
                            "figure comparing them."))
    return ReportParts(comparison=(header, rows), blocks=blocks, summary=summary)
