"""The generic runner: a grid over any spec field, one training run (run folder) per cell.

Cell config = the spec's resolved sections with the sweep assignment applied. Epoch budgets
(``training.record_epochs``) are snapshots of one run, not separate runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlplab.experiments.protocols.common import (
    METRICS, ReportParts, build_net, build_trainer, diverged_label, estimated_cost, finish_run, metric_summary, pm,
    prepare,
)
from mlplab.experiments.checkpoint import CheckpointClock, attach, float_back, json_float, snapshots_back
from mlplab.experiments.shapes import EPOCH_KEYS, INT, NUMBER, MapOf, Record
from mlplab.experiments.sweep import Cell, grid, label, set_path
from mlplab.training import Callback

OPTIONS: dict[str, tuple[Any, Any]] = {}
#: what a cell returns (:func:`_finish`): a cached result is checked against it
RESULTS = {"run_cell": METRICS.extended({
    "snapshots?": MapOf(Record({"train_accuracy": NUMBER, "test_accuracy": NUMBER}), **EPOCH_KEYS),
    "stacked_with?": INT,
})}
SECTION_KEYS = ("data", "split", "preprocessing", "model", "training")


def base_config(spec) -> dict[str, Any]:
    import copy

    return {sec: copy.deepcopy(spec.sections[sec]) for sec in SECTION_KEYS}


def cells(spec, seeds: int = 1) -> list[Cell]:
    out = []
    for assignment in grid(spec.sweep):
        cfg = base_config(spec)
        cfg["options"] = dict(spec.options)
        for path, value in assignment.items():
            set_path(cfg, path, value)
        name = label(assignment) or spec.name
        out.append(Cell(name=name, kind="generic:run_cell", config=cfg, seed=cfg["training"]["seed"],
                        tags=dict(assignment), cost=estimated_cost(cfg), **stacking(cfg)))
    return out


def stacking(cfg: dict[str, Any]) -> dict[str, Any]:
    """Cell fields that let cells differing only in learning rate, initialisation or (full
    batch) seed train as one stacked model; ``{}`` for configs that cannot stack (anything but
    plain SGD, dropout, L2)."""
    t, m = cfg["training"], cfg["model"]
    params = t.get("optimizer_params") or {}
    if t.get("optimizer") != "sgd" or params.get("momentum") or params.get("weight_decay"):
        return {}
    if m.get("dropout") or m.get("l2"):
        return {}
    varies = ["training.lr", "model.init", "model.init_params", "training.schedule_params"]
    if not t.get("batch_size"):  # full batch: the seed only draws the initial weights
        varies.append("training.seed")
    return {"stack_kind": "generic:run_stack", "stack_varies": tuple(varies)}


SEED_PATH = "training.seed"


class Snapshots(Callback):
    """Train/test accuracy at the given epochs, and the loss every ``cost_every`` epochs."""

    def __init__(self, data, epochs: list[int], cost_every: int, score=None):
        self.data, self.epochs, self.cost_every = data, set(epochs), cost_every
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.costs: list[tuple[int, float]] = []
        self.score = score

    def on_epoch_end(self, trainer, logs):
        e = logs["epoch"]
        if self.cost_every and (e == 1 or e % self.cost_every == 0) and logs.get("loss") is not None:
            self.costs.append((e, float(logs["loss"])))
        if e in self.epochs:
            net = trainer.net
            ptr, pte = net.predict(self.data.X_train), net.predict(self.data.X_test)
            snap = {"train_accuracy": float(np.mean(ptr == self.data.y_train)),
                    "test_accuracy": float(np.mean(pte == self.data.y_test))}
            if self.score is not None:
                snap.update(self.score(net, ptr, pte))
            self.snapshots[e] = snap

    def cell_state(self):
        return {"snapshots": {str(k): v for k, v in self.snapshots.items()},
                "costs": [[e, json_float(c)] for e, c in self.costs]}

    def load_cell_state(self, state):
        self.snapshots = snapshots_back(state["snapshots"], self.epochs)
        self.costs = [(int(e), float_back(c)) for e, c in state["costs"]]


def _setup(cfg: dict[str, Any], data):
    net = build_net(cfg, data.X_train.shape[1], len(data.class_names))
    t = cfg["training"]
    snaps = Snapshots(data, t["record_epochs"], t["cost_every"])
    return build_trainer(cfg, net, [snaps]), snaps


def _finish(cfg: dict[str, Any], data, trainer, snaps: Snapshots, out: Path, stacked: int = 1) -> dict[str, Any]:
    train_time = float(sum(x for x in trainer.history.time_s if x is not None))
    extra = {"snapshots": {str(k): v for k, v in sorted(snaps.snapshots.items())},
             "costs": snaps.costs, "stacked_with": stacked}
    metrics = finish_run(out, trainer.net, data, cfg, trainer, train_time, extra=extra)
    res = metric_summary(metrics)
    res["snapshots"] = extra["snapshots"]
    res["stacked_with"] = stacked
    return res


def run_cell(cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    data = prepare(cfg)
    trainer, snaps = _setup(cfg, data)
    ck = attach(out, trainer, {"snapshots": snaps})
    trainer.fit(data.X_train, data.y_train, cfg["training"]["epochs"], data.X_val, data.y_val)
    res = _finish(cfg, data, trainer, snaps, out)
    ck.clear()
    return res


def run_stack(cfgs: list[dict[str, Any]], outs: list[Path]) -> list[Any]:
    """Cells equal but for learning rate / initialisation / (full batch) seed, as one stacked model
    (one by one when :func:`mlplab.stacked.stack_problem` objects)."""
    from mlplab.stacked import train_stacked

    data = prepare(cfgs[0])  # the stack key guarantees the same data for all
    pairs = [_setup(cfg, data) for cfg in cfgs]
    clock = CheckpointClock()  # the whole stack checkpoints at the same epoch
    cks = [attach(out, tr, {"snapshots": sn}, clock) for (tr, sn), out in zip(pairs, outs)]
    errors = train_stacked([tr for tr, _ in pairs], data.X_train, data.y_train, cfgs[0]["training"]["epochs"],
                           data.X_val, data.y_val)
    results = [err if err is not None else _finish(cfg, data, tr, sn, out, stacked=len(cfgs))
               for cfg, (tr, sn), out, err in zip(cfgs, pairs, outs, errors)]
    for ck in cks:
        ck.clear()
    return results


def report(spec, results, out: Path, aggregates: dict[str, Any]) -> ReportParts:
    header = ["cell", "published", "reproduced test accuracy (%)", "corrected", "macro AUC (OvR)", "train time (s)"]
    rows = []
    for group, agg in aggregates.items():
        m = agg["metrics"]
        rows.append([diverged_label(group, agg.get("n_diverged", 0), agg["n_seeds"]), "n/a", pm(m.get("test_accuracy")),
                     "n/a", pm(m.get("test_auc_ovr_macro"), 1, 4), pm(m.get("training_time_s"), 1, 1)])
    return ReportParts(comparison=(header, rows))
