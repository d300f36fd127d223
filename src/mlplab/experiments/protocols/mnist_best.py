"""Experiment 4, ``mnist-best``: how far a from-scratch MLP goes on MNIST, beside PyTorch and
scikit-learn's MLPClassifier trained with the same architecture and settings.

Canonical 60,000/10,000 split; a stratified validation split taken from the training set is
the only thing any choice looks at (the test set is scored per epoch only to draw the
test-accuracy-against-seconds curves, never to choose). Each framework's trained weights are
copied into an equivalent :class:`mlplab.network.MLP`, so all metrics come from the same code.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.experiments.checkpoint import attach
from mlplab.experiments.protocols import common
from mlplab.experiments.protocols.common import ReportParts, metric_summary, num, pct
from mlplab.experiments.shapes import NUMBER, TEXT, ListOf, Row
from mlplab.experiments.spec import SECTIONS, KeyUse, choice, distinct, list_of, section_keys, table
from mlplab.experiments.sweep import Cell, diverged
from mlplab.io import atomic_write_text
from mlplab.training import Callback, History, divergence_error, quiet_fp

FRAMEWORKS = ("mlplab", "torch", "sklearn")
OPTIONS = {
    "recipes": (["fast", "best"], distinct(list_of(lambda v: None if isinstance(v, str) else "must be a string"))),
    "frameworks": (list(FRAMEWORKS), distinct(list_of(choice(*FRAMEWORKS)))),
    "fast": ({}, table),
    "best": ({}, table),
    "targets": ({"fast": 0.98, "best": 0.985}, table),
    "fast_time_budget_s": (30.0, lambda v: None if isinstance(v, (int, float)) and v > 0 else "must be > 0"),
}
SEED_PATH = "training.seed"
#: what a cell returns (:func:`run_cell`): a cached result is checked against it. The report
#: compares the training time with the fast recipe's budget and draws the accuracy-seconds curve
RESULTS = {"run_cell": common.METRICS.extended({"training_time_s": NUMBER, "trained_with?": TEXT,
                                                "time_curve?": ListOf(Row(NUMBER, NUMBER))})}
MODEL_KEYS = {"hidden", "hidden_activation", "dropout", "l2", "init"}
RECIPE_KEYS = {"hidden", "hidden_activation", "dropout", "l2", "optimizer", "lr", "batch_size", "epochs",
               "schedule", "schedule_params", "init"}


def check_spec(spec) -> None:
    for r in spec.options["recipes"]:
        recipe = spec.options.get(r)
        if not isinstance(recipe, dict) or not recipe:
            raise common.ConfigError(f"{spec.origin}: options.{r} must be a table describing the recipe")
        for k, v in recipe.items():
            if k not in RECIPE_KEYS:
                raise common.ConfigError(f"{spec.origin}: unknown key {k!r} in options.{r}; valid: "
                                         f"{', '.join(sorted(RECIPE_KEYS))}")
            sec = "model" if k in MODEL_KEYS else "training"
            default, check = SECTIONS[sec][k]
            value = float(v) if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool) else v
            problem = check(value)
            if problem:  # checked here, not when the cell runs: nothing is written for a bad spec
                raise common.ConfigError(f"{spec.origin}: options.{r}.{k} = {v!r} {problem}")
    for r, target in spec.options["targets"].items():
        if r not in spec.options["recipes"] and r not in ("fast", "best"):
            raise common.ConfigError(f"{spec.origin}: options.targets.{r}: no recipe {r!r} "
                                     f"(recipes: {', '.join(spec.options['recipes'])})")
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
            raise common.ConfigError(f"{spec.origin}: options.targets.{r} = {target!r} must be an accuracy "
                                     "between 0 and 1")


def key_use(spec) -> KeyUse:
    """Every key reaches every cell, but the output layer (softmax, cross-entropy) and the keys
    every recipe of options.recipes sets itself."""
    recipes = [spec.options[r] for r in spec.options["recipes"]]
    overridden = set.intersection(*(set(r) for r in recipes)) if recipes else set()
    paths = {("model." if k in MODEL_KEYS else "training.") + k: k for k in overridden}
    return KeyUse(read=section_keys() - set(paths),
                  fixed={"model.output_activation": "softmax", "model.loss": "cross_entropy"},
                  hints={**{p: f"every recipe sets it: {', '.join(f'options.{r}.{k}' for r in spec.options['recipes'])}"
                            for p, k in paths.items()},
                         "model.*": "every recipe ends in softmax with cross-entropy"})


def accuracy_ylim(values: list[float]) -> tuple[float, float]:
    """y-limits (in %) of the accuracy-against-seconds figure: 95-100 when every point is at least
    95 % (the range that matters for MNIST), else widened down to include every point."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    lo = min(vals, default=95.0)
    if lo >= 95.0:
        return 95.0, 100.0
    return max(0.0, float(np.floor(lo)) - 1.0), 100.0


def _recipe_config(spec, recipe: dict[str, Any]) -> dict[str, Any]:
    cfg = {sec: copy.deepcopy(spec.sections[sec]) for sec in ("data", "split", "preprocessing", "model", "training")}
    for k, v in recipe.items():
        if k in MODEL_KEYS:
            cfg["model"][k] = copy.deepcopy(v)
        else:
            cfg["training"][k] = copy.deepcopy(v)
    cfg["model"].update(output_activation="softmax", loss="cross_entropy")
    return cfg


def cells(spec, seeds: int = 1) -> list[Cell]:
    from mlplab.experiments.protocols.torch_ref import available

    out = []
    for r in spec.options["recipes"]:
        base = _recipe_config(spec, spec.options[r])
        for fw in spec.options["frameworks"]:
            if fw == "torch" and not available():
                continue
            cfg = copy.deepcopy(base)
            cfg["options"] = {"framework": fw, "recipe": r}
            out.append(Cell(name=f"{r}/{fw}", kind="mnist_best:run_cell", config=cfg, seed=cfg["training"]["seed"],
                            tags={"recipe": r, "framework": fw},
                            cost=common.estimated_cost(cfg, factor=1.0 if fw == "mlplab" else 2.0)))
    return out


class TestCurve(Callback):
    """Test accuracy and cumulative training seconds after every epoch (for the curves only)."""

    def __init__(self, data):
        self.data = data
        self.points: list[tuple[float, float]] = []
        self.elapsed = 0.0

    def on_epoch_end(self, trainer, logs):
        self.elapsed += logs["time_s"]
        acc = float(np.mean(trainer.net.predict(self.data.X_test) == self.data.y_test))
        logs["test_accuracy"] = acc
        self.points.append((self.elapsed, acc))

    def cell_state(self):
        return {"points": [list(p) for p in self.points], "elapsed": self.elapsed}

    def load_cell_state(self, state):
        self.points = [(float(s), float(a)) for s, a in state["points"]]
        self.elapsed = float(state["elapsed"])


def _sklearn(cfg, data):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    m, t = cfg["model"], cfg["training"]
    clf = MLPClassifier(hidden_layer_sizes=tuple(m["hidden"]), activation=m["hidden_activation"], solver="adam",
                        alpha=m["l2"], batch_size=t["batch_size"], learning_rate_init=t["lr"], max_iter=1,
                        shuffle=True, random_state=t["seed"], warm_start=True, tol=0.0, n_iter_no_change=10**9)
    hist: dict[str, list] = {"epoch": [], "loss": [], "accuracy": [], "val_accuracy": [], "test_accuracy": [],
                             "time_s": []}
    points, elapsed = [], 0.0
    for epoch in range(1, t["epochs"] + 1):
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(), quiet_fp():  # a diverging epoch is reported once, below
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(data.X_train, data.y_train) if epoch == 1 else clf.partial_fit(data.X_train, data.y_train)
        except ValueError:  # scikit-learn refuses the non-finite weights its solver produced
            if _finite_weights(clf):
                raise
        _check_sklearn(clf, epoch, t["lr"], DIVERGENCE_FACTOR)
        secs = time.perf_counter() - t0
        elapsed += secs
        va = float(np.mean(clf.predict(data.X_val) == data.y_val)) if data.X_val is not None else None
        te = float(np.mean(clf.predict(data.X_test) == data.y_test))
        hist["epoch"].append(epoch)
        hist["loss"].append(float(clf.loss_))
        hist["accuracy"].append(None)
        hist["val_accuracy"].append(va)
        hist["test_accuracy"].append(te)
        hist["time_s"].append(secs)
        points.append((elapsed, te))
    weights = []
    for W, b in zip(clf.coefs_, clf.intercepts_):
        weights += [W, b]
    import sklearn

    return weights, hist, elapsed, points, f"scikit-learn {sklearn.__version__} MLPClassifier"


#: every framework's divergence factor (:class:`~mlplab.training.Trainer`'s loss explosion
#: rule): the same runaway learning rate diverges for mlplab, PyTorch and scikit-learn alike
DIVERGENCE_FACTOR = 1e4


def _finite_weights(clf) -> bool:
    """Whether the MLPClassifier's weights are finite and not too large: the squared norm of each
    array is finite in its dtype (:func:`mlplab.network.finite_arrays`, :meth:`MLP.finite_weights
    <mlplab.network.MLP.finite_weights>`'s test)."""
    from mlplab.network import finite_arrays

    return finite_arrays((*getattr(clf, "coefs_", ()), *getattr(clf, "intercepts_", ())))


def _check_sklearn(clf, epoch: int, lr: float, factor: float | None = DIVERGENCE_FACTOR) -> None:
    """Raise :class:`~mlplab.errors.DivergenceError` if the MLPClassifier's weights are non-finite
    or too large, or its epoch loss is not finite or exploded past ``factor`` times the first
    epoch's (``loss_curve_[0]``; :func:`mlplab.training.loss_exploded`), as mlplab's own training
    does and in its words: the same runaway learning rate diverges for both, not a finished
    (garbage) model here. scikit-learn's loss clips its probabilities and adds the L2 penalty,
    so a runaway rate mostly shows through the penalty, or through the weights."""
    from mlplab.training import divergence_what, loss_exploded

    if not _finite_weights(clf):
        raise divergence_error(divergence_what(None), epoch, lr)
    loss = float(clf.loss_)
    if not np.isfinite(loss):
        raise divergence_error(divergence_what(loss), epoch, lr)
    curve = getattr(clf, "loss_curve_", None) or [loss]
    if loss_exploded(loss, float(curve[0]), factor):
        raise divergence_error(divergence_what(loss), epoch, lr)


def run_cell(cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    data = common.prepare(cfg)
    fw = cfg["options"]["framework"]
    t = cfg["training"]
    sizes = [data.X_train.shape[1], *cfg["model"]["hidden"], len(data.class_names)]
    net = common.build_net(cfg, sizes[0], sizes[-1])
    trainer = None
    if fw == "mlplab":
        curve = TestCurve(data)
        trainer = common.build_trainer(cfg, net, [curve], divergence_factor=DIVERGENCE_FACTOR)
        ck = attach(out, trainer, {"curve": curve})
        trainer.fit(data.X_train, data.y_train, t["epochs"], data.X_val, data.y_val)
        train_time, points, note = float(sum(trainer.history.time_s)), curve.points, "mlplab"
    elif fw == "torch":
        from mlplab.experiments.protocols.torch_ref import train_torch

        sched = {"name": t["schedule"], **t["schedule_params"]}
        res = train_torch(sizes, cfg["model"]["hidden_activation"], {"name": t["optimizer"], "lr": t["lr"]},
                          t["batch_size"], t["epochs"], t["seed"], data.X_train, data.y_train, data.X_val,
                          data.y_val, dropout=cfg["model"]["dropout"], schedule=sched, X_test=data.X_test,
                          y_test=data.y_test, divergence_factor=DIVERGENCE_FACTOR)
        net.set_weights(res["weights"])
        h = res["history"]
        hist = {k: h[k] for k in ("epoch", "loss", "accuracy", "val_accuracy", "test_accuracy", "time_s")}
        train_time, points, note = res["train_time_s"], list(zip(h["elapsed_s"], h["test_accuracy"])), \
            f"torch {res['torch_version']}"
    else:
        weights, hist, train_time, points, note = _sklearn(cfg, data)
        net.set_weights(weights)
    metrics = common.finish_run(out, net, data, cfg, trainer, train_time,
                                extra={"trained_with": note, "time_curve": points, "epochs_run": t["epochs"]})
    if trainer is None:
        n = len(hist["epoch"])
        h = History.from_dict({**hist, "val_loss": [None] * n, "lr": [t["lr"]] * n})
        atomic_write_text(out / "history.csv", h.to_csv())
        from mlplab.report import write_run_report

        write_run_report(out)
    res = metric_summary(metrics)
    res["time_curve"] = points
    res["trained_with"] = note
    if trainer is not None:
        ck.clear()
    return res


def report(spec, results, out: Path, aggregates: dict[str, Any]) -> ReportParts:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = spec.options["targets"]
    header = ["recipe", "framework", "target (issue)", "test accuracy (%)", "macro AUC OvR", "training time (s)",
              "meets target"]
    rows = []
    for r in results:
        rec, fw = r.cell.tags["recipe"], r.cell.tags["framework"]
        target = targets.get(rec)
        tgt = "n/a" if target is None else f">= {100 * target:.1f}%" + (
            f" in <= {spec.options['fast_time_budget_s']:.0f} s" if rec == "fast" else "")
        if diverged(r.result):  # no metrics: the report's list of diverged cells says why
            rows.append([rec, fw, tgt, "diverged", "diverged", "n/a", "no (diverged)" if target is not None else "n/a"])
            continue
        acc = r.result["test_accuracy"]
        ok = target is not None and acc >= target
        if rec == "fast":
            ok = ok and r.result["training_time_s"] <= spec.options["fast_time_budget_s"]
        rows.append([rec, f"{fw} ({r.result.get('trained_with', '')})", tgt, pct(acc),
                     num(r.result.get("test_auc_ovr_macro"), 5), num(r.result["training_time_s"], 1),
                     ("yes" if ok else "no") if target is not None else "n/a"])
    blocks: list[tuple] = [("p", "No published numbers: this experiment asks how far the from-scratch MLP goes. "
                                 "Every choice was made on the validation split; sklearn's MLPClassifier has no "
                                 "dropout or learning-rate schedule, so it runs the closest recipe it supports "
                                 "(constant learning rate, no dropout). Training times are one BLAS thread per cell.")]
    gone = [r.cell.name for r in results if diverged(r.result)]
    if len(gone) == len(results):
        blocks.append(("p", "Every cell diverged (see the diverged cells below), so there is no figure of test "
                            "accuracy against training seconds."))
        return ReportParts(comparison=(header, rows), blocks=blocks)
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        pts = r.result.get("time_curve") or []
        if pts:
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker=".", label=r.cell.name)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(*accuracy_ylim([100 * p[1] for r in results for p in (r.result.get("time_curve") or [])]))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    from mlplab.io import atomic_write_bytes
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(out / "figures" / "accuracy_vs_seconds.png", buf.getvalue())
    left_out = f" ({', '.join(gone)} diverged: left out)" if gone else ""
    blocks.append(("img", f"Test accuracy against training seconds{left_out}", "figures/accuracy_vs_seconds.png"))
    return ReportParts(comparison=(header, rows), blocks=blocks)
