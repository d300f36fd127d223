"""Experiment 2, ``ovr-logistic``: ten single-neuron digit detectors (report 2, part 1).

Per digit d: 5,000 images of d plus 555 of every other digit (9,995, seeded here; the report's
were not), labels 1 for d; one sigmoid neuron (784 weights + a bias), binary cross-entropy,
full-batch gradient descent, a threshold of 0.75, tested on the full 10,000-image test set.

Speed: the models of one digit share their data, so every (learning rate, init) pair of that
digit is one column of a stacked ``(784, k)`` weight matrix, trained by one matrix
multiplication per step with a per-column learning rate. Each column follows exactly the
update of ``MLP([784, 1], output "sigmoid", loss "binary_cross_entropy")`` trained alone
(``tests/experiments`` checks this); only BLAS summation order can differ.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from mlplab.experiments.protocols import common
from mlplab.experiments.protocols.common import ReportParts, pct
from mlplab.experiments.shapes import BOOL, INT, NUMBER, TEXT, ListOf, Maybe, OrDiverged, Record
from mlplab.experiments.spec import KeyUse, choice, distinct, list_of, nonneg_int, pos_float, pos_int
from mlplab.errors import DivergenceError
from mlplab.experiments.sweep import Cell, diverged, diverged_result
from mlplab.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from mlplab.training import divergence_error, quiet_fp

OPTIONS = {
    "digits": (list(range(10)), distinct(list_of(nonneg_int, allow_empty=False))),
    "lrs": ([0.01, 0.05, 0.001], distinct(list_of(pos_float, allow_empty=False))),
    "inits": (["uniform01", "zeros"], distinct(list_of(choice("uniform01", "zeros"), allow_empty=False))),
    "threshold": (0.75, lambda v: None if isinstance(v, (int, float)) and 0 < v < 1 else "must be in (0, 1)"),
    "n_pos": (5000, pos_int),
    "cost_every": (100, pos_int),
}
SEED_PATH = "training.seed"
#: a cell's models (see :mod:`mlplab.experiments.protocols`): one detector per lr x init column
MODEL_NOUN = "detector"

#: what a digit cell returns (:func:`digit_cell`): a cached result is checked against it. The
#: report reads each model's digit, learning rate, init and metrics (a diverged model has its error)
_MODEL = Record({"digit": INT, "lr": NUMBER, "init": TEXT})
RESULTS = {"digit_cell": Record({
    "digit?": INT,
    "training_time_s?": NUMBER,
    "models": ListOf(OrDiverged(_MODEL.extended({
        "train_accuracy": NUMBER, "train_correct?": INT,
        "test": Record({"accuracy": NUMBER, "baseline_accuracy": NUMBER, "beats_baseline": BOOL,
                        "balanced_accuracy": NUMBER, "roc_auc": Maybe(NUMBER), "f1": Maybe(NUMBER)}),
    }), _MODEL), min_len=1),
})}


#: the report's initialisation: the only one the ``as-published`` protocol trains
PUBLISHED_INIT = "uniform01"


def inits(spec) -> list[str]:
    """The initialisations the protocol trains: ``as-published`` the report's U(0, 1) only;
    ``corrected`` and ``both`` every one in ``options.inits`` (zeros is the corrected one)."""
    if spec.protocol == "as-published":
        return [i for i in spec.options["inits"] if i == PUBLISHED_INIT]
    return list(spec.options["inits"])


def key_use(spec) -> KeyUse:
    """The report's protocol fixes everything but the dataset, dtype, epochs and seed; the rest of
    a detector's settings are [options]."""
    return KeyUse(
        read={"data.dataset", "data.data_dir", "preprocessing.dtype", "training.epochs", "training.seed"},
        fixed={"split.kind": "canonical", "preprocessing.scaling": "unit", "training.optimizer": "sgd",
               "training.batch_size": 0},
        hints={"training.lr": "its learning rates are options.lrs",
               "training.cost_every": "its cost interval is options.cost_every",
               "data.max_train_samples": "each detector trains on options.n_pos images of its digit and "
                                         "options.n_pos // 9 of every other digit",
               "data.max_test_samples": "every detector is tested on the full test set, as in the report",
               "model.*": "each detector is one sigmoid neuron with binary cross-entropy; its initialisations "
                          "are options.inits",
               "*": "each detector trains full batch on a balanced subset of the canonical training set, "
                    "pixels / 255, as in the report"})


def check_spec(spec) -> None:
    if spec.protocol == "as-published" and PUBLISHED_INIT not in spec.options["inits"]:
        raise common.ConfigError(f"{spec.origin}: protocol 'as-published' trains the report's init "
                                 f"{PUBLISHED_INIT!r}, which options.inits = {spec.options['inits']!r} leaves out")


#: per-class training-set counts already looked up, per (dataset, data_dir)
_CLASS_COUNTS: dict[tuple[str, Any], np.ndarray] = {}


def check_data(spec) -> None:
    """``options.digits`` and ``options.n_pos`` against the training set's classes, before any
    cell runs (the runner calls this before it writes anything): a bad value is refused naming
    the spec file and the option, not after other cells have trained."""
    from mlplab.errors import ConfigError

    d = spec.sections["data"]
    key = (d["dataset"], d.get("data_dir"))
    if key not in _CLASS_COUNTS:
        _CLASS_COUNTS[key] = np.bincount(np.asarray(common.dataset(*key).y_train, dtype=np.int64))
    counts = _CLASS_COUNTS[key]
    k = len(counts)
    digits = [int(v) for v in spec.options["digits"]]
    bad = [v for v in digits if not 0 <= v < k]
    if bad:
        raise ConfigError(f"{spec.origin}: options.digits = {spec.options['digits']!r}: "
                          f"{', '.join(map(str, bad))} not a class of {d['dataset']} (classes 0..{k - 1})")
    n_pos = int(spec.options["n_pos"])
    n_neg = n_pos // (k - 1) if k > 1 else 0
    for v in digits:
        if counts[v] < n_pos:
            raise ConfigError(f"{spec.origin}: options.n_pos = {n_pos} is more than digit {v} has "
                              f"({int(counts[v])} training samples of {d['dataset']})")
        others = [c for c in range(k) if c != v and counts[c] < n_neg]
        if others:
            c = others[0]
            raise ConfigError(f"{spec.origin}: options.n_pos = {n_pos} asks for {n_neg} negatives of every other "
                              f"digit, but digit {c} has only {int(counts[c])} training samples of {d['dataset']}")


def cells(spec, seeds: int = 1) -> list[Cell]:
    out = []
    for d in spec.options["digits"]:
        cfg = {sec: copy.deepcopy(spec.sections[sec]) for sec in ("data", "split", "preprocessing", "training")}
        cfg["options"] = {k: copy.deepcopy(v) for k, v in spec.options.items() if k != "digits"}
        cfg["options"]["inits"] = inits(spec)  # "both" and "corrected" train the same cells
        cfg["options"]["digit"] = int(d)
        out.append(Cell(name=f"digit={d}", kind="ovr_logistic:digit_cell", config=cfg,
                        seed=cfg["training"]["seed"], tags={"digit": int(d)}))
    return out


def init_columns(inits: list[str], n_features: int, seed: int, dtype) -> np.ndarray:
    """One column per init: ``uniform01`` = U(0, 1) (the report's), ``zeros``."""
    from mlplab.network import STREAM_INIT, rng_for

    rng = rng_for(seed, STREAM_INIT)
    cols = [rng.uniform(0.0, 1.0, size=n_features) if i == "uniform01" else np.zeros(n_features) for i in inits]
    return np.stack(cols, axis=1).astype(dtype)


def train_stacked(X: np.ndarray, y01: np.ndarray, W: np.ndarray, lrs: np.ndarray, epochs: int,
                  cost_every: int = 100) -> tuple[np.ndarray, np.ndarray, list[tuple[int, list[float | None]]],
                                                  list[DivergenceError | None]]:
    """Full-batch gradient descent of k independent logistic neurons at once.

    ``X`` (m, d), ``y01`` (m,), ``W`` (d, k) initial weights (biases start at 0), ``lrs`` (k,).
    Per column: ``z = X w + b``, ``a = sigmoid(z)``, ``dw = X^T (a - y) / m``, ``db = mean(a - y)``
    (mlplab's fused binary cross-entropy gradient). Costs (the report's BCE with eps 1e-8 in
    both logs) are recorded at iteration 0 and every ``cost_every`` iterations.

    A column whose step makes its weights non-finite or too large (their squared norm
    overflows, as :meth:`MLP.finite_weights <mlplab.network.MLP.finite_weights>` checks) has
    diverged: it keeps its last finite weights and stops, its costs are ``None`` from then on,
    and the others train on. Returns ``(W, b, costs, errors)``, ``errors`` per column ``None``
    or its :class:`~mlplab.errors.DivergenceError`.
    """
    m = X.shape[0]
    dt = X.dtype
    W = np.array(W, dtype=dt, copy=True)
    b = np.zeros(W.shape[1], dtype=dt)
    lr = np.array(lrs, dtype=dt, copy=True)  # a diverged column's is set to 0
    y = y01.astype(dt)[:, None]
    Z = np.empty((m, W.shape[1]), dtype=dt)
    dW = np.empty_like(W)
    costs: list[tuple[int, list[float | None]]] = []
    errors: list[DivergenceError | None] = [None] * W.shape[1]
    with quiet_fp():  # a diverging column is reported once, by its error
        for it in range(int(epochs)):
            np.matmul(X, W, out=Z)  # (m, d) @ (d, k)
            Z += b
            expit(Z, out=Z)  # a
            if cost_every and it % cost_every == 0:
                a = Z.astype(np.float64)
                c = -np.mean(y * np.log(a + 1e-8) + (1 - y) * np.log(1 - a + 1e-8), axis=0)
                costs.append((it, [None if e else float(v) for v, e in zip(c, errors)]))
            Z -= y  # a - y
            Z *= 1.0 / m
            np.matmul(X.T, Z, out=dW)  # (d, m) @ (m, k)
            db = Z.sum(axis=0)
            dW *= lr
            np.subtract(W, dW, out=dW)  # the new weights
            b_new = b - lr * db
            bad = ~(np.isfinite(np.einsum("ij,ij->j", dW, dW)) & np.isfinite(b_new * b_new))
            for j in np.flatnonzero(bad):
                if errors[j] is None:
                    errors[j] = divergence_error("weights became non-finite or too large", it + 1, float(lrs[j]))
                dW[:, j], b_new[j], lr[j] = W[:, j], b[j], 0
            W, dW, b = dW, W, b_new
    return W, b, costs, errors


def digit_cell(cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    from mlplab.data import splits
    from mlplab.metrics import binary_metrics

    o = cfg["options"]
    d = o["digit"]
    ds = common.dataset(cfg["data"]["dataset"], cfg["data"].get("data_dir"))
    dt = np.dtype(cfg["preprocessing"]["dtype"])
    seed = int(cfg["training"]["seed"])
    idx = splits.balanced_ovr_subset(ds.y_train, d, n_pos=o["n_pos"], seed=seed + 1000 * d)
    X = (ds.X_train[idx].astype(np.float64) / ds.pixel_max).astype(dt)
    y = (ds.y_train[idx] == d).astype(np.int64)
    Xt = (ds.X_test.astype(np.float64) / ds.pixel_max).astype(dt)
    yt = (ds.y_test == d).astype(np.int64)
    columns = [(lr, init) for lr in o["lrs"] for init in o["inits"]]
    W0 = np.concatenate([init_columns([init], X.shape[1], seed, dt) for _, init in columns], axis=1)
    lrs = np.array([lr for lr, _ in columns])
    epochs = int(cfg["training"]["epochs"])
    t0 = time.perf_counter()
    W, b, costs, errors = train_stacked(X, y, W0, lrs, epochs, o["cost_every"])
    train_time = time.perf_counter() - t0
    A = expit((X @ W + b).astype(np.float64))
    At = expit((Xt @ W + b).astype(np.float64))
    models = []
    for j, (lr, init) in enumerate(columns):
        if errors[j] is not None:  # no metrics: the report says it diverged, and why
            models.append({"digit": d, "lr": lr, "init": init, **diverged_result(errors[j])})
            continue
        test = binary_metrics(yt, At[:, j], threshold=o["threshold"])
        train = binary_metrics(y, A[:, j], threshold=o["threshold"])
        models.append({"digit": d, "lr": lr, "init": init, "train_accuracy": train["accuracy"],
                       "train_correct": int(round(train["accuracy"] * len(y))), "test": test})
    common.write_config(out, cfg)
    lines = ["iteration," + ",".join(f"cost_lr{lr:g}_{init}" for lr, init in columns)]
    lines += [f"{it}," + ",".join("" if v is None else repr(v) for v in c) for it, c in costs]
    atomic_write_text(out / "history.csv", "\n".join(lines) + "\n")
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, W=W.astype(np.float64), b=b.astype(np.float64), lrs=lrs,
                        inits=np.array([i for _, i in columns]), subset_index=idx)
    atomic_write_bytes(out / "weights.npz", buf.getvalue())
    from mlplab.environment import environment_info

    atomic_write_json(out / "environment.json", environment_info())
    from mlplab.data import data_record

    metrics = {"digit": d, "n_train": int(len(y)), "n_test": int(len(yt)), "training_time_s": train_time,
               "epochs": epochs, "models": models, "stacked_columns": len(columns), "data": data_record(ds)}
    atomic_write_json(out / "metrics.json", metrics)
    acc01 = [m["test"]["accuracy"] for m in models if not diverged(m)]
    return {"digit": d, "training_time_s": train_time, "test_accuracy": float(np.mean(acc01)) if acc01 else None,
            "models": models}


# ----------------------------------------------------------------------------- report


def _models(r) -> list[dict[str, Any]]:
    """The lr x init models of the digit cell ``r``; each one diverged, with the cell's error,
    if the whole cell did (its models are then records without metrics, as a diverged model's)."""
    if diverged(r.result):
        o = r.cell.config["options"]
        return [{"digit": int(r.cell.tags["digit"]), "lr": lr, "init": init, **r.result}
                for lr in o["lrs"] for init in o["inits"]]
    return r.result["models"]


def report(spec, results, out: Path, aggregates: dict[str, Any]) -> ReportParts:
    from mlplab import plots
    from mlplab.experiments.sweep import mean_sd

    pub = spec.report.get("published", {})
    ptr, pte = pub.get("train_lr0.01", []), pub.get("test_lr0.01", [])
    first_seed: dict[int, Any] = {}
    first_models: dict[int, list[dict[str, Any]]] = {}
    per_seed: dict[tuple[int, float, str], list[dict[str, Any]]] = {}  # every seed's model, in seed order
    every: list[tuple[Any, dict[str, Any]]] = []  # (cell, model) of every seed
    for r in results:
        d = int(r.cell.tags["digit"])
        ms = _models(r)
        if d not in first_seed:
            first_seed[d], first_models[d] = r, ms
        for m in ms:
            per_seed.setdefault((m["digit"], float(m["lr"]), m["init"]), []).append(m)
            every.append((r, m))
    models = [m for ms in first_models.values() for m in ms]
    n_seeds = max((len(v) for v in per_seed.values()), default=1)
    used_inits = inits(spec)
    published_side = spec.protocol in ("as-published", "both")
    corrected_side = spec.protocol in ("corrected", "both")

    def get(d, lr, init):
        for m in models:
            if m["digit"] == d and abs(m["lr"] - lr) < 1e-12 and m["init"] == init:
                return m
        return None

    def seeds_of(d, lr, init) -> list[dict[str, Any]]:
        return [m for (dd, ll, ii), v in per_seed.items() if dd == d and abs(ll - lr) < 1e-12 and ii == init
                for m in v]

    def over_seeds(d, lr, init, value, scale: float = 100.0, digits: int = 2) -> str:
        """``value(model)`` (a percentage unless ``scale``) over the seeds that trained: mean ± sd
        when there are several, "diverged" when every seed did."""
        ms = seeds_of(d, lr, init)
        if not ms:
            return "not run"
        ok = [m for m in ms if not diverged(m)]
        return common.pm_seeds(mean_sd([value(m) for m in ok]), len(ms) - len(ok), len(ms), scale, digits)

    digits = sorted(first_seed)
    over = f", mean ± sd over {n_seeds} seeds" if n_seeds > 1 else ""
    header = ["digit", "published train / test (%), lr 0.01, U(0,1)",
              f"reproduced train / test (%), lr 0.01, U(0,1){over}",
              "all-negative test baseline (%)", "beats baseline" + (f" (seeds of {n_seeds})" if n_seeds > 1 else ""),
              f"corrected: balanced accuracy (%){over}", f"corrected: AUC{over}", f"corrected: F1{over}",
              f"corrected: zeros init, test acc / balanced (%){over}"]
    rows = []
    for d in digits:
        seeds_m = seeds_of(d, 0.01, "uniform01")
        p = f"{ptr[d]:.2f} / {pte[d]:.2f}" if d < len(ptr) else "n/a"
        if not seeds_m:
            continue
        trained = [x for x in seeds_m if not diverged(x)]
        # the baseline depends on the test labels only: any detector of the digit that trained has it
        base = next((m["test"]["baseline_accuracy"] for r, m in every if m["digit"] == d and not diverged(m)), None)
        beats = sum(1 for x in trained if x["test"]["beats_baseline"])
        if not trained:
            beats_txt = "diverged"
        elif n_seeds > 1:
            gone = len(seeds_m) - len(trained)
            beats_txt = f"{beats} of {len(trained)}" + (f" ({gone} diverged)" if gone else "")
        else:
            beats_txt = "yes" if beats else "NO"
        reproduced = common.pair(over_seeds(d, 0.01, "uniform01", lambda x: x["train_accuracy"]),
                                 over_seeds(d, 0.01, "uniform01", lambda x: x["test"]["accuracy"]))
        if not published_side:
            reproduced = "not run (protocol corrected)"
        if corrected_side:
            corrected = [over_seeds(d, 0.01, "uniform01", lambda x: x["test"]["balanced_accuracy"]),
                         over_seeds(d, 0.01, "uniform01", lambda x: x["test"]["roc_auc"], 1.0, 4),
                         over_seeds(d, 0.01, "uniform01", lambda x: x["test"]["f1"], 1.0, 3),
                         "n/a" if not seeds_of(d, 0.01, "zeros") else
                         common.pair(over_seeds(d, 0.01, "zeros", lambda x: x["test"]["accuracy"]),
                                     over_seeds(d, 0.01, "zeros", lambda x: x["test"]["balanced_accuracy"]))]
        else:
            corrected = ["not run (protocol as-published)"] * 4
        rows.append([str(d), p, reproduced, pct(base), beats_txt, *corrected])
    if not rows:  # the spec leaves the report's configuration out: say so instead of an empty table
        rows.append(["none", "the report's configuration (lr 0.01, U(0,1) init) is not among options.lrs x "
                     "options.inits: see the table of all learning rates", *[""] * (len(header) - 2)])
    figures: list[tuple] = []
    summary: dict[str, Any] = {"models": models}
    claims = []
    for lr in spec.options["lrs"]:
        for init in used_inits:
            ms_all = [m for m in (get(d, lr, init) for d in digits) if m is not None]
            if not ms_all:
                continue
            ms = [m for m in ms_all if not diverged(m)]
            gone = [str(m["digit"]) for m in ms_all if diverged(m)]
            if not ms:
                claims.append([f"{lr:g}", init, *["diverged"] * 5, ", ".join(gone)])
                figures.append(("p", f"lr {lr:g}, init {init}: the detector of every digit diverged (see the "
                                     "diverged detectors above), so there is no accuracy figure for it."))
                continue
            te = [m["test"]["accuracy"] for m in ms]
            tr = [m["train_accuracy"] for m in ms]
            best = max(ms, key=lambda m: m["test"]["accuracy"])
            claims.append([f"{lr:g}", init, str(sum(1 for a, b in zip(tr, te) if a > 0.8 and b > 0.8)),
                           str(sum(1 for a in te if a > 0.9)), f"{pct(best['test']['accuracy'])} (digit {best['digit']})",
                           str(sum(1 for m in ms if m["test"]["beats_baseline"])),
                           pct(float(np.mean([m["test"]["balanced_accuracy"] for m in ms]))),
                           ", ".join(gone) or "none"])
            name = f"ovr_lr{lr:g}_{init}.png"
            plots.ovr_accuracy_bars(tr, te, [m["test"]["baseline_accuracy"] for m in ms], out / "figures" / name,
                                    title=f"lr {lr:g}, init {init}: accuracy at threshold {spec.options['threshold']}",
                                    digits=[m["digit"] for m in ms])
            figures.append(("img", f"Per-digit train/test accuracy, lr {lr:g}, init {init}"
                                   + _left_out(gone), f"figures/{name}"))
    blocks: list[tuple] = [("h2", "All learning rates and initialisations")]
    if n_seeds > 1:
        seed0 = min(r.cell.seed for r in first_seed.values()) if first_seed else 0
        blocks.append(("p", f"This table and the figures below show the first seed (seed {seed0}) of the "
                            f"{n_seeds} seeds per digit; the table above shows mean ± sd over the seeds."))
    blocks.append(("p", "Published claims: lr 0.05: every digit above 80% on train and test, five above 90% "
                        "test, best 97.91% (digit 1); lr 0.001: accuracy collapses, best model 21.67%. "
                        "Raw accuracy at a fixed 0.75 threshold on a test set with about 10% positives is "
                        "misleading: the all-negative baseline scores about 90%."))
    blocks.append(("table", ["lr", "init", "digits > 80% train and test", "digits > 90% test", "best test",
                             "models beating the all-negative baseline", "mean balanced accuracy (%)",
                             "diverged (digits)"], claims))
    failed = [(r, m) for r, m in every if diverged(m)]
    summary["diverged_models"] = [{"digit": m["digit"], "lr": m["lr"], "init": m["init"], "seed": r.cell.seed,
                                   "error": diverged(m)} for r, m in failed]
    if failed:
        seed = (lambda r: f", seed {r.cell.seed}") if n_seeds > 1 else (lambda r: "")
        blocks.append(("h3", "Diverged detectors"))
        blocks.append(("p", f"{len(failed)} of {len(every)} detectors diverged: their training stopped with the "
                            "error below, they have no metrics (\"diverged\" in the tables), and the counts, means "
                            "and figures are of the detectors that trained."))
        blocks.append(("ul", [f"digit {m['digit']}, lr {m['lr']:g}, init {m['init']}{seed(r)}: {diverged(m)}"
                              for r, m in failed]))
    blocks += figures
    # weights as images
    for lr in spec.options["lrs"][:1]:
        for init in used_inits:
            ws, wd, gone = [], [], []
            for d in digits:  # in digit order (the cells finish in any order)
                m = get(d, lr, init)
                if m is not None and diverged(m):  # not a trained detector's weights
                    gone.append(str(d))
                    continue
                arr = np.load(first_seed[d].folder / "weights.npz")
                j = [k for k, (l, i) in enumerate(zip(arr["lrs"], arr["inits"])) if abs(l - lr) < 1e-12 and i == init]
                if j:
                    ws.append(arr["W"][:, j[0]])
                    wd.append(d)
            side = math.isqrt(len(ws[0])) if ws else 0
            if ws and side * side == len(ws[0]):  # square images (MNIST's 28x28, the digits' 8x8)
                name = f"ovr_weights_lr{lr:g}_{init}.png"
                plots.ovr_weight_images(np.stack(ws), (side, side), out / "figures" / name, digits=wd,
                                        title=f"One-vs-rest weight vectors, lr {lr:g}, init {init}\n"
                                              "(one colour scale for all digits; red > 0 > blue)")
                blocks.append(("img", f"Weight vectors as {side}x{side} images, lr {lr:g}, init {init}"
                                      + _left_out(gone), f"figures/{name}"))
            elif gone and not ws:
                blocks.append(("p", f"lr {lr:g}, init {init}: the detector of every digit diverged, so there are "
                                    "no weight images for it."))
    summary["claims"] = claims
    n_models = len(spec.options["lrs"]) * len(used_inits)
    label = f"mean test accuracy over the {n_models} lr x init models (%)"
    if failed:
        label = f"mean test accuracy over those of the {n_models} lr x init models that trained (%)"
    return ReportParts(comparison=(header, rows), blocks=blocks, summary=summary, cell_accuracy_label=label)


def _left_out(digits: list[str]) -> str:
    """A figure caption's note of the digits whose detector diverged (left out of it)."""
    if not digits:
        return ""
    return f" (digit{'s' if len(digits) > 1 else ''} {', '.join(digits)} diverged: left out)"
