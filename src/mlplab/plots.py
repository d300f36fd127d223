"""Matplotlib figures of saved results. Headless (Agg), never shown, written atomically.

Every function takes plain arrays / dicts and an output path, writes a PNG through
:func:`mlplab.io.atomic_write_bytes` and returns the path. Figures are built on
:class:`matplotlib.figure.Figure` objects (no pyplot state, nothing to close) under a fixed
style, and saved without the "Software" metadata, so the same inputs give byte-identical PNGs.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.style

matplotlib.use("Agg")  # headless before anything can import pyplot

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mlplab.errors import ConfigError
from mlplab.io import atomic_write_bytes

__all__ = [
    "comparison_bars",
    "confident_mistakes",
    "confusion_matrix_heatmap",
    "cost_curves",
    "first_layer_weights",
    "ovr_accuracy_bars",
    "ovr_weight_images",
    "per_class_bars",
    "roc_curves",
    "sweep_accuracy_vs_epochs",
    "sweep_heatmap",
    "training_curves",
]

# A fixed style (matplotlib's defaults plus these) so a user's matplotlibrc cannot change the
# bytes of a figure; applied around every public function by ``_styled``.
_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 10,
}
_DPI = 100


def _styled(fn: Callable[..., Path]) -> Callable[..., Path]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        with matplotlib.style.context(["default", _STYLE]):
            return fn(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return atomic_write_bytes(path, buf.getvalue())


def _legend_outside(ax, *args: Any, **kwargs: Any) -> Any:
    """The axes' legend to the right of it, outside the data area, so it can never hide a bar or
    a label ("n/a", values); the constrained layout makes room for it."""
    return ax.legend(*args, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _num(values: Any) -> np.ndarray:
    """A float array with ``None`` / empty strings turned into NaN (matplotlib skips NaN)."""
    return np.array([np.nan if v is None or v == "" else float(v) for v in values], dtype=np.float64)


def _grid(n: int) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def _check_image_shape(image_shape: Sequence[int], d: int, what: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or int(np.prod(shape)) != d:
        raise ConfigError(f"image_shape {shape} does not match {what} with {d} values per image")
    return shape


def _image_grid(fig: Figure, images: np.ndarray, titles: Sequence[str], cmap: str, symmetric: bool) -> None:
    """The images in a near-square grid, each scaled on its own (``symmetric``: around 0), with an
    optional title above each. Grayscale images are tiled into one mosaic drawn by one
    ``imshow`` (dozens of axes are what made these figures slow); colour images get one axes each."""
    n = images.shape[0]
    rows, cols = _grid(n)
    if images.ndim != 3:
        _image_axes(fig, images, titles, cmap, symmetric, rows, cols)
        return
    h, w = images.shape[1:]
    gap = max(1, round(0.12 * min(h, w)))
    top = round(0.45 * h) if titles else 0  # room for a title above each tile
    cell_h, cell_w = top + h + gap, w + gap
    mosaic = np.full((rows * cell_h + gap, cols * cell_w + gap), np.nan)
    for i in range(n):
        img = images[i].astype(np.float64)
        if symmetric:
            lim = float(np.max(np.abs(img))) or 1.0
            img = img / lim  # in [-1, 1]
        else:
            lo, hi = float(np.min(img)), float(np.max(img))
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        r, c = divmod(i, cols)
        y0, x0 = gap + r * cell_h + top, gap + c * cell_w
        mosaic[y0:y0 + h, x0:x0 + w] = img
    ax = fig.subplots()
    ax.set_axis_off()
    cm = matplotlib.colormaps[cmap].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=cm, vmin=-1.0 if symmetric else 0.0, vmax=1.0,
              interpolation="nearest")
    for i, title in enumerate(titles[:n] if titles else []):
        r, c = divmod(i, cols)
        ax.text(gap + c * cell_w + w / 2, gap + r * cell_h + top - 1, title, ha="center", va="bottom", fontsize=7)


def _image_axes(fig: Figure, images: np.ndarray, titles: Sequence[str], cmap: str, symmetric: bool,
                rows: int, cols: int) -> None:
    n = images.shape[0]
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        img = images[i]
        if symmetric:
            lim = float(np.max(np.abs(img))) or 1.0
            ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
        else:
            ax.imshow(img, cmap=cmap, interpolation="nearest")
        if titles:
            ax.set_title(titles[i], fontsize=7)


# ----------------------------------------------------------------------------- run figures


@_styled
def training_curves(
    history: Mapping[str, Sequence[Any]],
    path: str | os.PathLike,
    published: Mapping[str, Any] | None = None,
    *,
    train_note: str = "",
    loss_name: str = "",
    marked_epoch: int | None = None,
    marked_label: str = "",
) -> Path:
    """Loss and accuracy per epoch, train vs validation, optionally over a published curve.

    Parameters
    ----------
    history : mapping of lists
        ``epoch``, ``loss``, ``accuracy`` and optionally ``val_loss``, ``val_accuracy``
        (entries may be ``None`` / empty). Accuracies as fractions in [0, 1]. A series with no
        value is neither drawn nor listed in the legend; a panel with none says so.
    published : mapping, optional
        ``epoch`` plus any of ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (same
        units), and an optional ``label`` (default ``"published"``); drawn dashed.
    train_note : how the train values were measured, added to their legend entries, e.g.
        ``"running mean over the epoch's minibatches"`` (validation is measured after the epoch).
    loss_name : the loss, named on the loss axis (e.g. ``"cross-entropy"``).
    marked_epoch, marked_label : an epoch marked by a dashed vertical line with this legend
        entry (e.g. the one early stopping restored the weights of).
    """
    for key in ("epoch", "loss", "accuracy"):
        if key not in history:
            raise ConfigError(f"training history lacks the {key!r} column")
    epochs = _num(history["epoch"])
    fig = _figure(9, 3.5)
    ax_loss, ax_acc = fig.subplots(1, 2)
    note = f" ({train_note})" if train_note else ""
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        for series, name, colour in ((key, f"train {label}{note}", "C0"), (f"val_{key}", f"validation {label}", "C1")):
            values = history.get(series)
            if values is not None and np.any(np.isfinite(_num(values))):
                ax.plot(epochs, _num(values), marker=".", color=colour, label=name)
        if published:
            pe = _num(published.get("epoch", []))
            name = str(published.get("label", "published"))
            for pk, style in ((key, "--"), (f"val_{key}", ":")):
                if published.get(pk) is not None:
                    suffix = "" if pk == key else " (validation)"
                    ax.plot(pe, _num(published[pk]), style, color="0.3", label=f"{name} {label}{suffix}")
        if not ax.lines:
            ax.text(0.5, 0.5, f"no {label} recorded", ha="center", va="center", transform=ax.transAxes)
        elif marked_epoch is not None:
            ax.axvline(marked_epoch, color="0.4", ls="--", lw=0.8, label=marked_label or f"epoch {marked_epoch}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{label} ({loss_name})" if key == "loss" and loss_name else label)
        ax.set_title(label.capitalize())
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize=7)
    return _save(fig, path)


@_styled
def confusion_matrix_heatmap(
    cm: Any, class_names: Sequence[str], path: str | os.PathLike, title: str = "Confusion matrix"
) -> Path:
    """Counts annotated in each cell, coloured by the row-normalised rate (rows = true class)."""
    cm = np.asarray(cm, dtype=np.float64)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ConfigError(f"confusion matrix has shape {cm.shape}, expected ({k}, {k})")
    rows = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = max(4.0, 0.5 * k + 2)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(c) for c in class_names], rotation=90 if k > 12 else 0)
    ax.set_yticks(ticks, [str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 30:
        fontsize = 8 if k <= 12 else 5
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=fontsize,
                        color="white" if rates[i, j] > 0.5 else "black")
    return _save(fig, path)


@_styled
def roc_curves(y_true: Any, proba: Any, class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """One-vs-rest ROC curve of every class over the whole set, AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    k = len(class_names)
    if p.ndim != 2 or p.shape != (y.shape[0], k):
        raise ConfigError(f"proba has shape {p.shape}, expected ({y.shape[0]}, {k})")
    fig = _figure(6, 5.5)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    for c in range(k):
        pos = y == c
        if pos.all() or not pos.any():
            ax.plot([], [], color=cmap(c % cmap.N), label=f"{class_names[c]} (AUC undefined)")
            continue
        fpr, tpr, _ = roc_curve(pos.astype(int), p[:, c])
        auc = roc_auc_score(pos.astype(int), p[:, c])
        ax.plot(fpr, tpr, color=cmap(c % cmap.N), lw=1.2, label=f"{class_names[c]} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], "--", color="0.6", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curves, one-vs-rest")
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def _mark_undefined(ax, bars, vals) -> None:
    """Label the bars of undefined values (NaN: drawn with height 0) "n/a", so they cannot be
    read as a real 0."""
    for bar, v in zip(bars, vals):
        if not np.isfinite(v):
            ax.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom", fontsize=6,
                        rotation=90, xytext=(0, 2), textcoords="offset points")


@_styled
def per_class_bars(report_dict: Mapping[str, Any], class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """Precision, recall and F1 per class (from scikit-learn's ``output_dict`` report)."""
    missing = [c for c in class_names if c not in report_dict]
    if missing:
        raise ConfigError(f"classification report lacks classes: {', '.join(map(str, missing))}")
    fields = (("precision", "precision"), ("recall", "recall"), ("f1-score", "F1"))
    k = len(class_names)
    x = np.arange(k)
    width = 0.27
    fig = _figure(max(6.0, 0.6 * k + 2) + 1.0, 3.8)  # + the legend's column
    ax = fig.subplots()
    for i, (field, label) in enumerate(fields):
        vals = _num([report_dict[c].get(field) for c in class_names])
        bars = ax.bar(x + (i - 1) * width, np.nan_to_num(vals, nan=0.0), width, label=label)
        _mark_undefined(ax, bars, vals)
    ax.set_xticks(x, [str(c) for c in class_names])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("score")
    ax.set_title("Per-class precision, recall and F1")
    _legend_outside(ax)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


@_styled
def confident_mistakes(
    images: Any,
    y_true: Any,
    y_pred: Any,
    confidence: Any,
    path: str | os.PathLike,
    image_shape: Sequence[int],
    class_names: Sequence[str],
    n: int = 25,
) -> Path:
    """The ``n`` misclassified images with the highest predicted-class probability.

    ``images`` is (m, d) with one row per candidate; rows where ``y_true == y_pred`` are ignored.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 2:
        raise ConfigError(f"images must be a 2-D array (m, d), got shape {imgs.shape}")
    shape = _check_image_shape(image_shape, imgs.shape[1], "images")
    yt, yp = np.asarray(y_true).astype(np.int64), np.asarray(y_pred).astype(np.int64)
    conf = np.asarray(confidence, dtype=np.float64)
    if not (yt.shape == yp.shape == conf.shape == (imgs.shape[0],)):
        raise ConfigError("images, y_true, y_pred and confidence must have the same length")
    wrong = np.flatnonzero(yt != yp)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][: int(n)]
    if order.size == 0:
        fig = _figure(4, 1.5)
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
        return _save(fig, path)
    rows, cols = _grid(order.size)
    fig = _figure(1.3 * cols, 1.45 * rows + 0.3)
    fig.suptitle("Most confident mistakes (true → predicted, confidence)", fontsize=9)
    titles = [f"{class_names[yt[i]]}→{class_names[yp[i]]} {conf[i]:.2f}" for i in order]
    _image_grid(fig, imgs[order].reshape((order.size,) + shape).astype(np.float64), titles, "gray_r", False)
    return _save(fig, path)


@_styled
def first_layer_weights(W: Any, image_shape: Sequence[int], path: str | os.PathLike, n: int = 64) -> Path:
    """The first ``n`` columns of ``W`` (fan_in, fan_out), each shown as an input-shaped image."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ConfigError(f"first-layer weights must be 2-D (fan_in, fan_out), got shape {W.shape}")
    shape = _check_image_shape(image_shape, W.shape[0], "the weights' fan_in")
    m = min(int(n), W.shape[1])
    cols = W[:, :m].T.reshape((m,) + shape)
    rows, ncols = _grid(m)
    fig = _figure(1.0 * ncols, 1.0 * rows + 0.3)
    fig.suptitle(f"First-layer weights ({m} of {W.shape[1]} units; red > 0 > blue)", fontsize=9)
    _image_grid(fig, cols, [], "RdBu_r", True)
    return _save(fig, path)


# ----------------------------------------------------------------------------- report 2 figures


@_styled
def ovr_accuracy_bars(
    per_digit_train: Sequence[float],
    per_digit_test: Sequence[float],
    baselines: Sequence[float] | None,
    path: str | os.PathLike,
    title: str = "One-vs-rest accuracy per digit",
    digits: Sequence[Any] | None = None,
) -> Path:
    """Train and test accuracy of each one-vs-rest model, with the all-negative baseline as ticks.

    ``digits``: the digit each model detects, as the ticks read (default 0, 1, ...: a spec may
    train only some digits)."""
    tr, te = _num(per_digit_train), _num(per_digit_test)
    if tr.shape != te.shape:
        raise ConfigError("per_digit_train and per_digit_test must have the same length")
    k = tr.size
    labels = [str(d) for d in (range(k) if digits is None else digits)]
    if len(labels) != k:
        raise ConfigError(f"{len(labels)} digits given for {k} models")
    x = np.arange(k)
    fig = _figure(max(6.0, 0.6 * k + 2) + 1.6, 3.8)  # + the legend's column
    ax = fig.subplots()
    ax.bar(x - 0.2, tr, 0.4, label="train")
    ax.bar(x + 0.2, te, 0.4, label="test")
    if baselines is not None:
        bl = _num(baselines)
        if bl.shape != tr.shape:
            raise ConfigError("baselines must have one value per digit")
        ax.hlines(bl, x - 0.45, x + 0.45, colors="black", linestyles="--", label="all-negative baseline (test)")
    ax.set_xticks(x, labels)
    ax.set_xlabel("digit")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    _legend_outside(ax)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


@_styled
def ovr_weight_images(
    weights: Any, image_shape: Sequence[int], path: str | os.PathLike, cmap: str = "RdBu_r",
    digits: Sequence[Any] | None = None, title: str = "One-vs-rest weight vectors",
) -> Path:
    """The weight vector of every one-vs-rest model (rows of ``weights``) as an image.

    Every panel shares one colour scale, symmetric around 0 and shown by a colour bar, so sign
    and size compare across digits (zero is the diverging map's middle). ``digits``: the digit
    of each row, for the panel titles (default 0, 1, ...)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2:
        raise ConfigError(f"weights must be 2-D (n_models, d), got shape {w.shape}")
    shape = _check_image_shape(image_shape, w.shape[1], "the weights")
    labels = [str(d) for d in (range(w.shape[0]) if digits is None else digits)]
    if len(labels) != w.shape[0]:
        raise ConfigError(f"{len(labels)} digits given for {w.shape[0]} weight vectors")
    lim = float(np.max(np.abs(w))) if w.size and np.isfinite(w).any() else 1.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    fig = _figure(max(4.5, 1.6 * min(5, w.shape[0]) + 1.0), 1.7 * math.ceil(w.shape[0] / 5) + 0.6)
    fig.suptitle(title, fontsize=9)
    rows, cols = math.ceil(w.shape[0] / 5), min(5, w.shape[0])
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    im = None
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= w.shape[0]:
            ax.set_axis_off()
            continue
        im = ax.imshow(w[i].reshape(shape), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"digit {labels[i]}", fontsize=8)
    fig.colorbar(im, ax=list(axes), label="weight", shrink=0.9)
    return _save(fig, path)


@_styled
def sweep_accuracy_vs_epochs(
    results: Sequence[Mapping[str, Any]], path: str | os.PathLike, metric_name: str = "accuracy",
    title: str = "",
) -> Path:
    """Grouped train/test bars against the epoch budget, one panel per learning rate.

    ``results`` is a list of dicts with keys ``lr``, ``epochs``, ``train`` and ``test``. The
    panels share their y range, so bars of one height mean one value; ``title`` heads them.
    """
    if not results:
        raise ConfigError("sweep results are empty")
    for r in results:
        for key in ("lr", "epochs", "train", "test"):
            if key not in r:
                raise ConfigError(f"sweep result {dict(r)!r} lacks {key!r}")
    lrs = sorted({float(r["lr"]) for r in results}, reverse=True)
    fig = _figure(4.5 * len(lrs) + 0.8, 3.8)
    if title:
        fig.suptitle(title, fontsize=9)
    axes = np.atleast_1d(fig.subplots(1, len(lrs), squeeze=False, sharey=True)).ravel()
    for ax, lr in zip(axes, lrs):
        rows = sorted((r for r in results if float(r["lr"]) == lr), key=lambda r: float(r["epochs"]))
        x = np.arange(len(rows))
        ax.bar(x - 0.2, _num([r["train"] for r in rows]), 0.4, label="train")
        ax.bar(x + 0.2, _num([r["test"] for r in rows]), 0.4, label="test")
        ax.set_xticks(x, [str(r["epochs"]) for r in rows])
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("epochs")
        ax.set_title(f"learning rate {lr:g}")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel(metric_name)
    _legend_outside(axes[-1])
    return _save(fig, path)


@_styled
def cost_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    xlabel: str = "iteration",
    ylabel: str = "cost",
    title: str = "Cost",
    logy: bool = False,
) -> Path:
    """Overlaid cost curves: ``curves`` maps a label to ``(x, y)``."""
    if not curves:
        raise ConfigError("no cost curves to plot")
    fig = _figure(6.5, 4)
    ax = fig.subplots()
    for label, (x, y) in curves.items():
        xs, ys = _num(x), _num(y)
        if xs.shape != ys.shape:
            raise ConfigError(f"cost curve {label!r}: x and y have different lengths")
        ax.plot(xs, ys, lw=1.2, label=str(label))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


@_styled
def sweep_heatmap(
    values: Any,
    row_labels: Sequence[Any],
    col_labels: Sequence[Any],
    path: str | os.PathLike,
    row_name: str,
    col_name: str,
    title: str = "",
    value_format: str = "{:.4g}",
) -> Path:
    """A 2-D sweep (e.g. learning rate x epochs) as an annotated heatmap; ``None``/NaN cells are blank."""
    v = np.array([[np.nan if x is None else float(x) for x in row] for row in values], dtype=np.float64)
    if v.shape != (len(row_labels), len(col_labels)):
        raise ConfigError(f"sweep values have shape {v.shape}, expected ({len(row_labels)}, {len(col_labels)})")
    fig = _figure(max(4.0, 0.9 * v.shape[1] + 2.5), max(3.0, 0.6 * v.shape[0] + 1.5))
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(v), cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(np.arange(v.shape[1]), [str(c) for c in col_labels])
    ax.set_yticks(np.arange(v.shape[0]), [str(r) for r in row_labels])
    ax.set_xlabel(col_name)
    ax.set_ylabel(row_name)
    if title:
        ax.set_title(title)
    finite = v[np.isfinite(v)]
    mid = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            if np.isfinite(v[i, j]):
                ax.text(j, i, value_format.format(v[i, j]), ha="center", va="center", fontsize=8,
                        color="black" if v[i, j] > mid else "white")
    return _save(fig, path)


@_styled
def comparison_bars(
    names: Sequence[str], metrics: Mapping[str, Sequence[Any]], path: str | os.PathLike, title: str = "Comparison"
) -> Path:
    """Grouped bars: one group per metric (``metrics`` maps a metric name to one value per name).

    Names (run folders) and the title are drawn literally: no mathtext for ``$...$``, and a name
    starting with ``_`` still gets its legend entry."""
    if not names:
        raise ConfigError("nothing to compare")
    if not metrics:
        raise ConfigError("no metrics to compare")
    for key, vals in metrics.items():
        if len(vals) != len(names):
            raise ConfigError(f"metric {key!r} has {len(vals)} values for {len(names)} names")
    keys = list(metrics)
    x = np.arange(len(keys))
    width = 0.8 / len(names)
    legend_w = min(4.0, 0.6 + 0.055 * max(len(str(n)) for n in names))  # inches, fontsize 7
    fig = _figure(max(6.0, 1.4 * len(keys) + 2) + legend_w, 4)
    ax = fig.subplots()
    handles = []
    for i, name in enumerate(names):
        vals = _num([metrics[k][i] for k in keys])
        bars = ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(vals, nan=0.0), width)
        handles.append(bars)
        _mark_undefined(ax, bars, vals)
        for bar, v in zip(bars, vals):
            if np.isfinite(v):
                ax.annotate(f"{v:.4f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                            textcoords="offset points")
    ax.margins(y=0.15)  # room for the value labels above the bars
    ax.set_xticks(x, keys)
    ax.set_ylabel("value")
    ax.set_title(title, parse_math=False)
    # Explicit handles and labels: matplotlib drops labels starting with "_" only when it collects them.
    legend = _legend_outside(ax, handles, [str(n) for n in names], fontsize=7)
    for text in legend.get_texts():
        text.set_parse_math(False)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)
