"""Figures and Markdown/HTML reports rebuilt from a run folder's saved files, never by retraining.

A run folder holds::

    config.toml        resolved configuration
    history.csv        epoch,loss,accuracy,val_loss,val_accuracy,lr,time_s (validation may be empty)
    metrics.json       dataset, split, model, test, train?, inference, training_time_s, epochs_run,
                       restored_best_epoch?, stop_reason?, train_metrics? (how history.csv's
                       training columns were measured), model_file? (what an evaluation scored),
                       data? (which data exactly: mlplab.data.datasets.data_record)
    environment.json   mlplab.environment.environment_info(), with command? (the command line
                       that wrote the folder) and earlier_commands? (those a resumed run continued)
    model.npz          the model (not read here)
    predictions.npz    y_true (n,), proba (n, k), class_names (k,), image_shape,
                       mistake_images? (m, d) uint8 + mistake_index? (m,), first_layer_weights? (d, h)

``metrics.json`` is required; the other files are optional (the report says which are absent),
but a file that exists and cannot be read raises :class:`RunFolderError` naming it. The fields
of ``metrics.json`` that reports and comparisons use are type- and shape-checked (the error names
the field), and a ``predictions.npz`` that does not match ``metrics.json`` (row count, classes,
labels, predicted classes) is refused as coming from another run. Fields marked ``?`` are absent
from older run folders (the report then leaves their lines out); a malformed ``data`` or
``command`` is shown as not recorded, never an error (they describe the run, no number depends
on them).

Output is deterministic: the same saved files give byte-identical ``report.md``, ``report.html``
and PNGs (no timestamps or absolute paths are added).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.errors import ConfigError, MlplabError
from mlplab.io import atomic_write_text, printable

__all__ = [
    "FIGURES",
    "RunData",
    "RunFolderError",
    "compare_runs",
    "comparison_warnings",
    "load_run",
    "write_comparison",
    "write_run_figures",
    "write_run_report",
]

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time_s")

# (file name in figures/, caption) in report order.
FIGURES: tuple[tuple[str, str], ...] = (
    ("training_curves.png", "Training curves"),
    ("confusion_matrix.png", "Confusion matrix (test)"),
    ("roc_curves.png", "ROC curves, one-vs-rest (test)"),
    ("per_class.png", "Per-class precision, recall and F1 (test)"),
    ("confident_mistakes.png", "Most confident mistakes (test)"),
    ("first_layer_weights.png", "First-layer weights"),
)


class RunFolderError(MlplabError, ValueError):
    """A run folder lacks a required file, or one of its files is corrupt or inconsistent."""


# ----------------------------------------------------------------------------- loading


@dataclass
class RunData:
    """Everything read from one run folder (``None`` for an absent optional file)."""

    run_dir: Path
    metrics: dict[str, Any]
    history: dict[str, list[float | None]] | None = None
    config_text: str | None = None
    environment: dict[str, Any] | None = None
    predictions: dict[str, np.ndarray] | None = None
    absent: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return _display_name(self.run_dir)

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.metrics["test"]["classes"]]


def _display_name(path: Path) -> str:
    """The folder's own name, also for ``.``, ``..`` or ``run/`` (made absolute first, symlinks kept);
    bytes that are not UTF-8 shown as ``\\xff`` escapes (see :func:`mlplab.io.printable`)."""
    name = path.name if path.name not in ("", ".", "..") else (Path(os.path.abspath(path)).name or str(path))
    return printable(name)


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.exists():
        raise RunFolderError(f"{run_dir}: not a run folder (no such directory)")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: not a run folder (not a directory)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _bad(path: Path, where: str, what: str) -> RunFolderError:
    return RunFolderError(f"{path}: {where} {what}")


def _check_number(path: Path, where: str, value: Any, *, integer: bool = False) -> None:
    """``value`` must be ``None`` or a JSON number (an integer if ``integer``; NaN/inf allowed
    for floats, shown as n/a)."""
    if value is None:
        return
    if integer:
        ok = _is_number(value) and (isinstance(value, int) or (math.isfinite(value) and value == int(value)))
        if not ok or value < 0:
            raise _bad(path, where, f"must be a non-negative integer, got {value!r}"[:200])
    elif not _is_number(value):
        raise _bad(path, where, f"must be a number or null, got {value!r}"[:200])


def _check_notes(path: Path, where: str, notes: Any) -> None:
    if notes is None:
        return
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise _bad(path, where, f"must be a list of strings, got {notes!r}"[:200])


_METRIC_KEYS = ("accuracy", "balanced_accuracy", "log_loss", "roc_auc_ovr_macro", "roc_auc_ovo_macro",
                "roc_auc_ovr_micro", "roc_auc_ovr_weighted", "majority_baseline")
_INFERENCE_KEYS = ("median_s", "min_s", "max_s", "iqr_s", "samples_per_second", "seconds_per_sample")
_INFERENCE_INT_KEYS = ("rows", "repeats", "batch_size", "calls")
_REPORT_FIELDS = ("precision", "recall", "f1-score", "support")


def _check_metric_set(path: Path, part: str, d: dict[str, Any]) -> None:
    """The numbers and notes of a ``test`` / ``train`` object that the report shows."""
    for key in _METRIC_KEYS:
        _check_number(path, f"{part}.{key}", d.get(key))
    _check_number(path, f"{part}.n_samples", d.get("n_samples"), integer=True)
    _check_notes(path, f"{part}.notes", d.get("notes"))


def _check_test(path: Path, test: dict[str, Any]) -> None:
    for key in ("accuracy", "classes", "classification_report", "confusion_matrix"):
        if key not in test:
            raise RunFolderError(f"{path}: test metrics lack {key!r}")
    _check_metric_set(path, "test", test)
    classes = test["classes"]
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)):
        raise _bad(path, "test.classes", "must be a non-empty list of class names")
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise _bad(path, "test.classes", f"holds duplicate names: {names}")
    k = len(names)
    cm = test["confusion_matrix"]
    if not (isinstance(cm, list) and len(cm) == k and all(isinstance(r, list) and len(r) == k for r in cm)):
        raise RunFolderError(f"{path}: test confusion_matrix is not {k}x{k}")
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            _check_number(path, f"test.confusion_matrix[{i}][{j}]", v, integer=True)
            if v is None:
                raise _bad(path, f"test.confusion_matrix[{i}][{j}]", "must be a non-negative integer, got None")
    n = test.get("n_samples")
    if n is not None and int(sum(sum(r) for r in cm)) != int(n):
        raise _bad(path, "test.confusion_matrix", f"counts {int(sum(sum(r) for r in cm))} rows, "
                                                  f"test.n_samples says {int(n)}")
    rep = test["classification_report"]
    if not isinstance(rep, dict):
        raise _bad(path, "test.classification_report", "must be a JSON object")
    missing = [c for c in names if c not in rep]
    if missing:
        raise _bad(path, "test.classification_report", f"lacks classes: {', '.join(missing)}")
    for key in names + ["macro avg", "weighted avg"]:
        if key not in rep:
            continue
        entry = rep[key]
        if not isinstance(entry, dict):
            raise _bad(path, f"test.classification_report[{key!r}]", f"must be a JSON object, got {entry!r}"[:200])
        for f in _REPORT_FIELDS:
            _check_number(path, f"test.classification_report[{key!r}][{f!r}]", entry.get(f))
    _check_number(path, "test.classification_report['accuracy']", rep.get("accuracy"))


def _check_inference(path: Path, inf: dict[str, Any]) -> None:
    for key, entry in inf.items():
        if not isinstance(entry, dict):
            raise _bad(path, f"inference[{key!r}]", f"must be a JSON object, got {entry!r}"[:200])
        for f in _INFERENCE_KEYS:
            _check_number(path, f"inference[{key!r}].{f}", entry.get(f))
        for f in _INFERENCE_INT_KEYS:
            _check_number(path, f"inference[{key!r}].{f}", entry.get(f), integer=True)


def _load_metrics(path: Path) -> dict[str, Any]:
    """Read metrics.json and check the type and shape of every field report/compare use, so a
    malformed file is refused as one :class:`RunFolderError` naming the file and the field."""
    if not path.is_file():
        hint = ("the run was interrupted: `mlplab train --resume` finishes it"
                if (path.parent / "checkpoint.npz").is_file() else "run `mlplab evaluate` first")
        raise RunFolderError(f"{path}: missing; a run folder needs metrics.json ({hint})")
    m = _load_json(path)
    if not isinstance(m, dict):
        raise RunFolderError(f"{path}: expected a JSON object at top level")
    test = m.get("test")
    if not isinstance(test, dict):
        raise RunFolderError(f"{path}: lacks the 'test' metrics object")
    for optional in ("train", "inference"):
        if m.get(optional) is not None and not isinstance(m[optional], dict):
            raise RunFolderError(f"{path}: {optional!r} must be a JSON object")
    _check_test(path, test)
    if m.get("train") is not None:
        _check_metric_set(path, "train", m["train"])
    if m.get("inference") is not None:
        _check_inference(path, m["inference"])
    for key in ("dataset", "split", "test_rows", "model"):
        if m.get(key) is not None and not isinstance(m[key], str):
            raise _bad(path, key, f"must be a string, got {m[key]!r}"[:200])
    _check_number(path, "training_time_s", m.get("training_time_s"))
    _check_number(path, "epochs_run", m.get("epochs_run"), integer=True)
    _check_number(path, "restored_best_epoch", m.get("restored_best_epoch"), integer=True)
    for key in ("stop_reason", "model_file", "train_metrics"):
        if m.get(key) is not None and not isinstance(m[key], str):
            raise _bad(path, key, f"must be a string, got {m[key]!r}"[:200])
    ch = m.get("chunked_auc")
    if ch is not None:
        if not isinstance(ch, dict):
            raise _bad(path, "chunked_auc", "must be a JSON object")
        for key in ("value", "n_used", "n_skipped"):
            if key not in ch:
                raise _bad(path, "chunked_auc", f"lacks {key!r}")
        _check_number(path, "chunked_auc.value", ch["value"])
        for key in ("n_used", "n_skipped"):
            _check_number(path, f"chunked_auc.{key}", ch[key], integer=True)
    return m


def _float_or_none(text: str, path: Path, line: int, column: str) -> float | None:
    text = text.strip()
    if text == "" or text.lower() in ("nan", "none", "null"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise RunFolderError(f"{path}: line {line}, column {column!r}: not a number: {text!r}") from None
    return value if math.isfinite(value) else None


def _load_history(path: Path) -> dict[str, list[float | None]]:
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise RunFolderError(f"{path}: empty file (expected a header row)") from None
    header = [h.strip() for h in header]
    for required in ("epoch", "loss", "accuracy"):
        if required not in header:
            raise RunFolderError(f"{path}: header lacks the {required!r} column")
    columns: dict[str, list[float | None]] = {h: [] for h in header}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise RunFolderError(f"{path}: line {line} has {len(row)} fields, header has {len(header)}")
        for h, v in zip(header, row):
            columns[h].append(_float_or_none(v, path, line, h))
    return columns


def _load_predictions(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if magic != b"PK\x03\x04":  # np.load would try a pickle (or return a bare .npy array)
        raise RunFolderError(f"{path}: not a predictions file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise RunFolderError(f"{path}: not a predictions file (holds object arrays, "
                                 "which are never loaded)") from None
        raise RunFolderError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise RunFolderError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    for key in ("y_true", "proba", "class_names", "image_shape"):
        if key not in arrays:
            raise RunFolderError(f"{path}: lacks the {key!r} array")
    y, p = arrays["y_true"], arrays["proba"]
    k = arrays["class_names"].shape[0] if arrays["class_names"].ndim == 1 else -1
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise RunFolderError(f"{path}: y_true must be a 1-D integer array, got {y.dtype} {y.shape}")
    if p.ndim != 2 or p.shape != (y.shape[0], k):
        raise RunFolderError(f"{path}: proba has shape {p.shape}, expected ({y.shape[0]}, {k})")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise RunFolderError(f"{path}: y_true holds labels outside 0..{k - 1}")
    if ("mistake_images" in arrays) != ("mistake_index" in arrays):
        raise RunFolderError(f"{path}: mistake_images and mistake_index must be stored together")
    if "mistake_images" in arrays:
        mi, idx = arrays["mistake_images"], arrays["mistake_index"]
        if mi.ndim != 2 or idx.shape != (mi.shape[0],) or (idx.size and (idx.min() < 0 or idx.max() >= y.shape[0])):
            raise RunFolderError(f"{path}: mistake_images {mi.shape} / mistake_index {idx.shape} are inconsistent")
    if "first_layer_weights" in arrays and arrays["first_layer_weights"].ndim != 2:
        raise RunFolderError(f"{path}: first_layer_weights must be 2-D (fan_in, fan_out)")
    return arrays


def _check_predictions_match(path: Path, pred: dict[str, np.ndarray], test: dict[str, Any]) -> None:
    """Refuse a predictions.npz that is not the one metrics.json was computed from (e.g. copied
    from another run): row count, score columns, labels per class and predicted classes must agree."""
    y, proba = pred["y_true"], pred["proba"]
    cm = np.asarray(test["confusion_matrix"], dtype=np.int64)
    k = cm.shape[0]
    n = y.shape[0]
    expected = test.get("n_samples")
    if expected is None:
        expected = int(cm.sum())
    if n != int(expected):
        raise RunFolderError(f"{path}: holds {n} rows but metrics.json's test set has {int(expected)} "
                             "(predictions from another run?)")
    if proba.shape[1] != k:
        raise RunFolderError(f"{path}: proba has {proba.shape[1]} score columns but metrics.json has {k} classes")
    counts = np.bincount(y.astype(np.int64), minlength=k)
    if not np.array_equal(counts, cm.sum(axis=1)):
        raise RunFolderError(f"{path}: its labels per class differ from the row totals of metrics.json's "
                             "confusion matrix (predictions from another run?)")
    if n:
        got = np.zeros((k, k), dtype=np.int64)
        np.add.at(got, (y.astype(np.int64), proba.argmax(axis=1)), 1)
        moved = int(np.abs(got - cm).sum()) // 2  # rows whose predicted class differs
        # Slack: rows whose two best scores are (nearly) tied, as the float32 copy stored here can
        # tie scores the metrics were computed from in float64, plus 1% of the rows.
        tied = 0
        if k > 1:
            top2 = np.sort(proba.astype(np.float64), axis=1)[:, -2:]
            tied = int(np.count_nonzero(top2[:, 1] - top2[:, 0] <= 1e-6 * np.maximum(1.0, np.abs(top2[:, 1]))))
        if moved > tied + max(1, n // 100):
            raise RunFolderError(f"{path}: its predicted classes differ from metrics.json's confusion matrix "
                                 f"in {moved} of {n} rows (predictions from another run?)")


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Read a run folder; raise :class:`RunFolderError` naming the first missing/corrupt file."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    data = RunData(run_dir=run_dir, metrics=_load_metrics(run_dir / "metrics.json"))
    hist, cfg, env, pred = (run_dir / n for n in ("history.csv", "config.toml", "environment.json", "predictions.npz"))
    if hist.is_file():
        data.history = _load_history(hist)
    else:
        data.absent.append("history.csv")
    if cfg.is_file():
        text = _read_text(cfg)
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RunFolderError(f"{cfg}: not valid TOML ({exc})") from None
        data.config_text = text
    else:
        data.absent.append("config.toml")
    if env.is_file():
        e = _load_json(env)
        if not isinstance(e, dict):
            raise RunFolderError(f"{env}: expected a JSON object at top level")
        data.environment = e
    else:
        data.absent.append("environment.json")
    if pred.is_file():
        data.predictions = _load_predictions(pred)
        names = [str(c) for c in data.predictions["class_names"]]
        if names != data.class_names:
            raise RunFolderError(f"{pred}: class_names {names} differ from metrics.json classes {data.class_names}")
        _check_predictions_match(pred, data.predictions, data.metrics["test"])
    else:
        data.absent.append("predictions.npz")
    return data


# ----------------------------------------------------------------------------- figures


def _image_shape(pred: dict[str, np.ndarray]) -> tuple[int, ...] | None:
    shape = tuple(int(s) for s in np.asarray(pred["image_shape"]).ravel())
    return shape if len(shape) in (2, 3) and all(s > 0 for s in shape) else None


_CURVE_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _has_curves(history: dict[str, list[float | None]] | None) -> bool:
    """Whether history.csv holds a value to draw: a run trained with ``train_metrics = "none"``
    and no validation data records epochs only."""
    return bool(history and history.get("epoch")
                and any(v is not None for key in _CURVE_COLUMNS for v in history.get(key) or []))


def _restored_epoch(metrics: dict[str, Any]) -> int | None:
    """The epoch whose weights early stopping restored, when it is not the last one run."""
    restored, run = metrics.get("restored_best_epoch"), metrics.get("epochs_run")
    return int(restored) if restored is not None and restored != run else None


def _config(data: RunData) -> dict[str, Any]:
    try:
        return tomllib.loads(data.config_text) if data.config_text else {}
    except tomllib.TOMLDecodeError:  # pragma: no cover - load_run checked it
        return {}


def _train_note(data: RunData) -> str:
    """How the training loss and accuracy of history.csv were measured (metrics.json records
    the trainer's ``train_metrics``; older runs: their config.toml), for the curves' legend."""
    training = _config(data).get("training") or {}
    how = data.metrics.get("train_metrics") or training.get("train_metrics")
    if how == "full":
        return "measured after the epoch"
    if how == "running":
        if training.get("batch_size") == 0:  # full batch: one step per epoch
            return "measured before the epoch's full-batch step"
        return "running mean over the epoch's minibatches"
    return ""


_LOSS_NAMES = {"cross_entropy": "cross-entropy", "mse": "MSE", "binary_cross_entropy": "BCE"}


def _loss_name(model: Any) -> str:
    """The loss named by metrics.json's model description (``784-64-10 relu/softmax cross_entropy``)."""
    if not isinstance(model, str) or not model.split():
        return ""
    from mlplab.losses import LOSSES

    name = model.split()[-1].split("/")[-1]
    try:
        name = getattr(LOSSES.get(name), "name", name)
    except MlplabError:
        return ""
    return _LOSS_NAMES.get(name, name)


def _figures_of(data: RunData) -> list[Path]:
    from mlplab import plots

    fig_dir = data.run_dir / "figures"
    test = data.metrics["test"]
    names = data.class_names
    written: list[Path] = []
    if _has_curves(data.history):
        restored = _restored_epoch(data.metrics)
        written.append(plots.training_curves(
            data.history, fig_dir / "training_curves.png", train_note=_train_note(data),
            loss_name=_loss_name(data.metrics.get("model")), marked_epoch=restored,
            marked_label=f"weights restored (epoch {restored})"))
    written.append(
        plots.confusion_matrix_heatmap(test["confusion_matrix"], names, fig_dir / "confusion_matrix.png",
                                       title="Confusion matrix (test)")
    )
    pred = data.predictions
    if pred is not None:
        written.append(plots.roc_curves(pred["y_true"], pred["proba"], names, fig_dir / "roc_curves.png"))
    written.append(plots.per_class_bars(test["classification_report"], names, fig_dir / "per_class.png"))
    if pred is not None:
        shape = _image_shape(pred)
        if shape is not None and "mistake_images" in pred:
            mi, idx = pred["mistake_images"], pred["mistake_index"].astype(np.int64)
            if int(np.prod(shape)) == mi.shape[1]:
                p = pred["proba"][idx]
                written.append(
                    plots.confident_mistakes(mi, pred["y_true"][idx], p.argmax(axis=1), p.max(axis=1),
                                             fig_dir / "confident_mistakes.png", shape, names)
                )
        if shape is not None and "first_layer_weights" in pred:
            w = pred["first_layer_weights"]
            if int(np.prod(shape)) == w.shape[0]:
                written.append(plots.first_layer_weights(w, shape, fig_dir / "first_layer_weights.png"))
    return written


def write_run_figures(run_dir: str | os.PathLike) -> list[Path]:
    """Regenerate every figure of a run under ``run_dir/figures`` from its saved files.

    Training curves (if ``history.csv``), confusion matrix, ROC curves (if ``predictions.npz``),
    per-class bars, the confident-mistakes gallery (if stored) and the first-layer weights (if
    stored and the input is image-shaped). A figure of a previous call that can no longer be
    drawn is removed, so the folder always matches the saved files. Returns the paths written.
    """
    data = load_run(run_dir)
    written = _figures_of(data)
    keep = {p.name for p in written}
    for name, _ in FIGURES:
        stale = data.run_dir / "figures" / name
        if name not in keep and stale.is_file():
            stale.unlink()
    return written


# ----------------------------------------------------------------------------- document model
# A report is a list of blocks rendered twice, to Markdown and to HTML, so both hold the same
# content: ("h1"|"h2"|"h3"|"p", text), ("ul", [items]), ("table", header, rows),
# ("img", caption, relative path), ("pre", text).


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def _fmt_g(x: Any) -> str:
    if x is None:
        return "n/a"
    try:
        return f"{float(x):.4g}"
    except (TypeError, ValueError):
        return str(x)


def _md_cell(text: str) -> str:
    return _md_inline(str(text).replace("\\", "\\\\")).replace("|", "\\|")


def _md_inline(text: str) -> str:
    """Plain text (which may hold a run or dataset name) as Markdown shows it inside a line: on
    one line, and no raw HTML."""
    return " ".join(str(text).splitlines()).replace("&", "&amp;").replace("<", "&lt;")


def _md_text(text: str) -> str:
    """:func:`_md_inline`, and no line-start syntax either (a heading, a quote, a list): a
    paragraph's text."""
    text = _md_inline(text)
    return "\\" + text if text[:1] in "#>-+*=|" and text else text


def _md_fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


_NUMBER = r"[-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?%?"
_NUMERIC_CELL = re.compile(rf"{_NUMBER}(?: ± {_NUMBER})?(?: \(n=\d+\))?(?: / {_NUMBER}(?: ± {_NUMBER})?(?: \(n=\d+\))?)*")
_NEUTRAL_CELLS = ("", "n/a", "not computed")


def _text_columns(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[bool]:
    """Per column, whether it holds text (left-aligned) rather than numbers (right-aligned):
    the first column always; another when any of its cells is not a number ("n/a" and blanks
    go with either)."""
    out = []
    for j in range(len(header)):
        cells = [str(row[j]).strip() for row in rows if j < len(row)]
        out.append(j == 0 or any(c not in _NEUTRAL_CELLS and not _NUMERIC_CELL.fullmatch(c) for c in cells))
    return out


def render_markdown(blocks: list[tuple]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + _md_inline(block[1]))
        elif kind == "p":
            out.append(_md_text(block[1]))
        elif kind == "ul":
            out.append("\n".join(f"- {_md_inline(item)}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
                     "|" + "|".join(":---" if left else "---:" for left in _text_columns(header, rows)) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{_md_inline(block[1]).replace('[', '(').replace(']', ')')}]({block[2]})")
        elif kind == "pre":
            fence = _md_fence(block[1])
            out.append(fence + "\n" + block[1].rstrip("\n") + "\n" + fence)
        else:  # pragma: no cover - programming error
            raise AssertionError(kind)
    return "\n\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1rem}th,td{border:1px solid #ccc;padding:0.2rem 0.5rem}
td{text-align:right;font-variant-numeric:tabular-nums}td:first-child,td.t{text-align:left}th{background:#f3f3f3}
pre{background:#f6f6f6;padding:0.5rem;overflow-x:auto}img{max-width:100%}figure{margin:1rem 0}"""


def render_html(blocks: list[tuple], title: str, base: Path) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>\n{_CSS}\n</style>", "</head>", "<body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{esc(block[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            header, rows = block[1], block[2]
            text = _text_columns(header, rows)
            parts = ["<table>", "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>",
                     "<tbody>"]
            cell = ['<td class="t">{}</td>' if j and is_text else "<td>{}</td>" for j, is_text in enumerate(text)]
            parts += ["<tr>" + "".join((cell[j] if j < len(cell) else "<td>{}</td>").format(esc(c))
                                       for j, c in enumerate(row)) + "</tr>" for row in rows]
            parts += ["</tbody>", "</table>"]
            out.append("\n".join(parts))
        elif kind == "img":
            data = base64.b64encode((base / block[2]).read_bytes()).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(block[1])}">'
                       f"<figcaption>{esc(block[1])}</figcaption></figure>")
        elif kind == "pre":
            out.append(f"<pre>{esc(block[1].rstrip(chr(10)))}</pre>")
        else:  # pragma: no cover
            raise AssertionError(kind)
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- report content

_SUMMARY_ROWS = (
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("log_loss", "Log loss"),
    ("roc_auc_ovr_macro", "ROC AUC, one-vs-rest, macro (whole set)"),
    ("roc_auc_ovo_macro", "ROC AUC, one-vs-one, macro (whole set)"),
    ("roc_auc_ovr_micro", "ROC AUC, one-vs-rest, micro (whole set)"),
    ("roc_auc_ovr_weighted", "ROC AUC, one-vs-rest, weighted (whole set)"),
    ("majority_baseline", "Majority-class baseline accuracy (the set's most common class)"),
    ("n_samples", "Samples"),
)


def _summary_blocks(data: RunData) -> list[tuple]:
    m = data.metrics
    test, train = m["test"], m.get("train")
    header = ["metric", "test"] + (["train"] if train else [])
    rows = []
    for key, label in _SUMMARY_ROWS:
        row = [label, _fmt(test.get(key))]
        if train:
            row.append(_fmt(train.get(key)))
        rows.append(row)
    ch = m.get("chunked_auc")  # written by evaluate_into; older run folders: computed here
    if not isinstance(ch, dict) and data.predictions is not None:
        from mlplab.metrics import chunked_ovr_auc

        ch = chunked_ovr_auc(data.predictions["y_true"], data.predictions["proba"], chunk=100)
    if isinstance(ch, dict):
        label = (f"Report-1 chunked AUC: mean of per-chunk macro OvR over {ch['n_used']} chunks of 100 rows "
                 f"({ch['n_skipped']} skipped; not a global AUC)")
        rows.insert(7, [label, _fmt(ch["value"])] + (["not computed"] if train else []))
    blocks: list[tuple] = [("h2", "Summary"), ("table", header, rows)]
    notes = [f"test: {n}" for n in test.get("notes", [])]
    if train:
        notes += [f"train: {n}" for n in train.get("notes", [])]
    if notes:
        blocks += [("p", "Notes:"), ("ul", notes)]
    return blocks


def _inference_blocks(data: RunData) -> list[tuple]:
    from mlplab.network import PREDICT_BATCH

    inf = data.metrics.get("inference")
    blocks: list[tuple] = [("h2", "Inference timing")]
    if not inf:
        return blocks + [("p", "No inference timing recorded in metrics.json.")]
    blocks.append(("p", ("Calls of the network's predict_proba (time.perf_counter): the forward pass and its "
                         "probabilities, measured separately from every metric; milliseconds per pass over the "
                         f"rows measured. \"Whole set\" is one call on every row, which the network computes in "
                         f"blocks of {PREDICT_BATCH:,} rows.")))
    header = ["batch size", "rows per pass", "repeats", "median ms", "min ms", "max ms", "IQR ms",
              "samples/s", "µs/sample"]

    def ms(x: Any) -> str:
        return _fmt_g(None if x is None else 1e3 * float(x))

    rows = []
    for key, entry in inf.items():
        if not isinstance(entry, dict):
            continue
        sps, rate = entry.get("seconds_per_sample"), entry.get("samples_per_second")
        rows.append([
            "whole set" if key == "all" else str(key), _fmt(entry.get("rows")), _fmt(entry.get("repeats")),
            ms(entry.get("median_s")), ms(entry.get("min_s")), ms(entry.get("max_s")), ms(entry.get("iqr_s")),
            "n/a" if rate is None else f"{float(rate):,.0f}",
            _fmt_g(None if sps is None else 1e6 * float(sps)),
        ])
    return blocks + [("table", header, rows)]


def _report_table_blocks(data: RunData) -> list[tuple]:
    rep = data.metrics["test"]["classification_report"]
    header = ["class", "precision", "recall", "F1", "support"]
    rows = []
    for name in data.class_names + ["macro avg", "weighted avg"]:
        entry = rep.get(name)
        if isinstance(entry, dict):
            rows.append([name, _fmt(entry.get("precision")), _fmt(entry.get("recall")),
                         _fmt(entry.get("f1-score")), _fmt(entry.get("support"))])
    if "accuracy" in rep:
        rows.insert(len(data.class_names), ["accuracy", "", "", _fmt(rep["accuracy"]), ""])
    return [("h2", "Classification report (test)"), ("table", header, rows)]


def _confusion_blocks(data: RunData) -> list[tuple]:
    names = data.class_names
    cm = data.metrics["test"]["confusion_matrix"]
    header = ["true / predicted"] + names
    rows = [[names[i]] + [str(v) for v in row] for i, row in enumerate(cm)]
    return [("h2", "Confusion matrix (test)"), ("p", "Rows: true class; columns: predicted class; counts."),
            ("table", header, rows)]


def _environment_blocks(data: RunData) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Environment")]
    env = data.environment
    if env is None:
        return blocks + [("p", "environment.json not found.")]
    rows = []
    for lib, ver in (env.get("versions") or {}).items():
        rows.append([str(lib), _version_text(env, str(lib), ver)])
    for b in env.get("blas") or []:
        if isinstance(b, dict):
            desc = " ".join(str(b.get(k)) for k in ("internal_api", "version", "threading_layer") if b.get(k))
            mark = " (mlplab's products)" if b.get("used_by_mlplab") else ""
            where = f", {b['package']}" if b.get("package") else ""
            rows.append([f"BLAS ({b.get('user_api', '?')}{where}){mark}", f"{desc}, {b.get('num_threads')} threads"])
    cpu = env.get("cpu") or {}
    if cpu:
        rows.append(["CPU", (f"{cpu.get('machine')}, {cpu.get('logical_cores')} logical cores, "
                             f"affinity {cpu.get('affinity')}")])
    if env.get("platform"):
        rows.append(["platform", str(env["platform"])])
    for k, v in sorted((env.get("thread_env") or {}).items()):
        rows.append([str(k), str(v)])
    if "command" in env:  # older files do not record it
        rows.append(["command", _command_text(env["command"])])
    if "earlier_commands" in env:  # a run finished by `train --resume`
        earlier = env["earlier_commands"]
        if isinstance(earlier, list):
            rows += [[f"resumed from (invocation {i})", _command_text(c, "not recorded (the Python API, or an older "
                                                                         "mlplab)")]
                     for i, c in enumerate(earlier, 1)]
        else:
            rows.append(["resumed from", "not recorded (checkpoint of an older version)"])
    return blocks + [("table", ["item", "value"], rows)]


def _version_text(env: dict[str, Any], lib: str, ver: Any) -> str:
    """A library's version as the Environment table shows it. Files that record whether torch
    was loaded (``torch_loaded``) say "not installed" for a missing torch, and name an installed
    one the run never imported; older files' missing versions stay "n/a"."""
    if lib != "torch" or "torch_loaded" not in env:
        return _fmt(ver)
    if ver is None:
        return "not installed"
    return str(ver) if env["torch_loaded"] else f"{ver} (installed, not loaded by this run)"


def _intro(m: dict[str, Any]) -> list[str]:
    """The report's first list: what ran on what. An evaluation (``mlplab evaluate``) names the
    model file it scored instead of training figures it does not have; an early-stopped run says
    which epoch's weights it kept (the metrics are theirs)."""
    intro = [f"Dataset: {_fmt(m.get('dataset'))}"]
    data = _data_text(m.get("data"))
    if data is not None:
        intro.append(data)
    intro += [f"Split: {_fmt(m.get('split'))}", f"Model: {_fmt(m.get('model'))}"]
    if m.get("model_file") is not None or (m.get("epochs_run") is None and m.get("training_time_s") is None):
        source = printable(m["model_file"]) if m.get("model_file") is not None else "not recorded"
        intro.append(f"Model file evaluated: {source} (an evaluation, not a training run)")
        compared = m.get("training_data")
        if isinstance(compared, dict) and isinstance(compared.get("text"), str):  # older evaluations lack it
            intro.append(f"Data vs the model's training data: {printable(compared['text'])}")
        return intro
    intro.append(f"Epochs run: {_fmt(m.get('epochs_run'))}")
    restored = _restored_epoch(m)
    if restored is not None:
        why = f"; {m['stop_reason']}" if m.get("stop_reason") else ""
        intro.append(f"Weights restored to epoch {restored} (the metrics below are of these weights){why}")
    elif m.get("stop_reason"):
        intro.append(f"Stopped: {m['stop_reason']}")
    time_s = m.get("training_time_s")
    intro.append(f"Training time: {_fmt_g(time_s)} s" if time_s is not None else "Training time: not recorded")
    return intro


def data_hashes(record: Any) -> dict[str, str] | None:
    """File name -> SHA-256 of a run's data files (metrics.json's ``data``; see
    :func:`mlplab.data.datasets.data_record`), or ``None`` when it records none (older run
    folders, digits)."""
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        return None
    out = {str(name): f["sha256"] for name, f in files.items()
           if isinstance(f, dict) and isinstance(f.get("sha256"), str)}
    return out or None


def _data_text(record: Any) -> str | None:
    """The report's line on which data exactly the run used, or ``None`` if not recorded."""
    hashes = data_hashes(record)
    if hashes is not None:
        files = ", ".join(f"{printable(name)} {sha[:12]}" for name, sha in hashes.items())
        known = ("verified against the dataset's known checksums" if record.get("checksums_verified")
                 else "not a known dataset's files")
        return (f"Data files (SHA-256 of the decompressed bytes, first 12 hex digits; metrics.json holds them in "
                f"full): {files}; {known}")
    if isinstance(record, dict) and isinstance(record.get("sklearn_version"), str):
        return f"Data: the digits bundled with scikit-learn {record['sklearn_version']}"
    return None


def _command_text(command: Any, unrecorded: str = "not recorded (written from the Python API)") -> str:
    """A recorded command line as a shell would take it; ``unrecorded`` for ``None``, and "not
    recorded" for anything else that is not one."""
    import shlex

    argv = command.get("argv") if isinstance(command, dict) else None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return unrecorded if command is None else "not recorded"
    return printable(shlex.join(argv))


def _report_blocks(data: RunData, figure_names: Sequence[str]) -> list[tuple]:
    m = data.metrics
    blocks: list[tuple] = [("h1", f"Run report: {data.name}"), ("ul", _intro(m))]
    if data.absent:
        blocks += [("p", "Files absent from the run folder (their sections are left out): "
                         + ", ".join(data.absent) + ".")]
    blocks += _summary_blocks(data)
    blocks += _inference_blocks(data)
    blocks += _report_table_blocks(data)
    blocks += _confusion_blocks(data)
    blocks.append(("h2", "Figures"))
    present = set(figure_names)
    for name, caption in FIGURES:
        if name in present:
            blocks += [("h3", caption), ("img", caption, f"figures/{name}")]
        elif name == "training_curves.png" and data.history is not None and not _has_curves(data.history):
            blocks += [("h3", caption), ("p", "Not drawn: history.csv records no per-epoch loss or accuracy "
                                              "(the run measured no training metrics, train_metrics = \"none\", "
                                              "and had no validation data).")]
    blocks.append(("h2", "Configuration"))
    if data.config_text is not None:
        blocks.append(("pre", data.config_text))
    elif m.get("model_file") is not None:
        blocks.append(("p", f"Not a training run: {printable(m['model_file'])} records the configuration it was "
                            "trained with."))
    else:
        blocks.append(("p", "config.toml not found."))
    blocks += _environment_blocks(data)
    return blocks


def write_run_report(run_dir: str | os.PathLike, figures: bool = True) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` into ``run_dir``.

    Sections: run summary; metric table (accuracy, balanced accuracy, log loss, every AUC
    definition incl. report 1's chunked mean, majority baseline); inference timing;
    classification report; confusion matrix; figures (relative paths in Markdown, base64 data
    URIs in HTML); configuration; environment. With ``figures=True`` (default) the figures are
    regenerated first; otherwise the existing ones in ``run_dir/figures`` are referenced.
    """
    data = load_run(run_dir)
    if figures:
        write_run_figures(run_dir)
    fig_dir = data.run_dir / "figures"
    names = [name for name, _ in FIGURES if (fig_dir / name).is_file()]
    blocks = _report_blocks(data, names)
    md = atomic_write_text(data.run_dir / "report.md", render_markdown(blocks))
    page = atomic_write_text(data.run_dir / "report.html",
                             render_html(blocks, f"Run report: {data.name}", data.run_dir))
    return md, page


# ----------------------------------------------------------------------------- comparison

COMPARE_COLUMNS = (
    ("run", "run"),
    ("model", "model"),
    ("dataset", "dataset"),
    ("split", "split"),
    ("test_n_samples", "test samples"),
    ("accuracy", "accuracy"),
    ("roc_auc_ovr_macro", "AUC OvR macro"),
    ("roc_auc_ovo_macro", "AUC OvO macro"),
    ("balanced_accuracy", "balanced acc."),
    ("log_loss", "log loss"),
    ("training_time_s", "training s"),
    ("inference_s_per_sample", "inference s/sample"),
)


def _run_names(paths: Sequence[Path]) -> list[str]:
    names = [_display_name(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [printable(p) for p in paths]


def _inference_per_sample(inf: Any) -> float | None:
    """Seconds per sample of the whole-set pass (else of the largest batch timed)."""
    if not isinstance(inf, dict):
        return None
    entries = [e for e in inf.values() if isinstance(e, dict) and e.get("seconds_per_sample") is not None]
    if isinstance(inf.get("all"), dict) and inf["all"].get("seconds_per_sample") is not None:
        return float(inf["all"]["seconds_per_sample"])
    if not entries:
        return None
    best = max(entries, key=lambda e: (e.get("batch_size") or 0))
    return float(best["seconds_per_sample"])


def compare_runs(run_dirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """One row per run: run, model, dataset, split, test_n_samples, accuracy, roc_auc_ovr_macro,
    roc_auc_ovo_macro, balanced_accuracy, log_loss, training_time_s, inference_s_per_sample
    (whole-set pass), and data_sha256 (:func:`data_hashes`, ``None`` if not recorded). See
    :func:`comparison_warnings` for runs scored on different data or test sets."""
    if not run_dirs:
        raise RunFolderError("compare needs at least one run folder")
    paths = [Path(p) for p in run_dirs]
    rows = []
    for name, path in zip(_run_names(paths), paths):
        _check_run_dir(path)
        m = _load_metrics(path / "metrics.json")
        test = m["test"]
        n = test.get("n_samples")
        rows.append({
            "run": name,
            "model": m.get("model"),
            "dataset": m.get("dataset"),
            "split": m.get("split"),
            "test_rows": m.get("test_rows"),
            "data_sha256": data_hashes(m.get("data")),
            "test_n_samples": int(n) if n is not None else int(sum(sum(r) for r in test["confusion_matrix"])),
            "accuracy": test.get("accuracy"),
            "roc_auc_ovr_macro": test.get("roc_auc_ovr_macro"),
            "roc_auc_ovo_macro": test.get("roc_auc_ovo_macro"),
            "balanced_accuracy": test.get("balanced_accuracy"),
            "log_loss": test.get("log_loss"),
            "training_time_s": m.get("training_time_s"),
            "inference_s_per_sample": _inference_per_sample(m.get("inference")),
        })
    return rows


_TRAIN_ONLY_SPLIT_PARTS = re.compile(r", (training subset of \d+( \(seed \d+\))?|validation \d+ taken from training)")


def _test_set_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies the test set a run was scored on: dataset, what picked its test rows (the
    ``test_rows`` key runs write; for older folders the split text without the parts that only
    change the training rows) and test size."""
    split = row.get("test_rows") or row.get("split")
    if isinstance(split, str) and not row.get("test_rows"):
        split = _TRAIN_ONLY_SPLIT_PARTS.sub("", split)
    return row.get("dataset"), split, row.get("test_n_samples")


def comparison_warnings(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One-line warnings when :func:`compare_runs` rows were scored on different data."""
    if len(rows) < 2:
        return []
    datasets = list(dict.fromkeys(_fmt(r.get("dataset")) for r in rows))
    warnings = []
    if len(datasets) > 1:
        warnings.append(f"the runs use different datasets ({', '.join(datasets)}); their metrics are not comparable")
    for name in datasets:  # and within each dataset, the test sets (every difference is named at once)
        same = [r for r in rows if _fmt(r.get("dataset")) == name]
        where = f" of {name}" if len(datasets) > 1 else ""
        recorded = [r for r in same if r.get("data_sha256")]  # older folders do not record their files
        differ = sorted({f for r in recorded for f in r["data_sha256"]
                         if len({str(q["data_sha256"].get(f)) for q in recorded}) > 1})
        if differ:
            first = differ[0]
            shas = ", ".join(f"{r['run']}: {str(r['data_sha256'].get(first) or 'absent')[:12]}" for r in recorded)
            warnings.append(f"the runs{where} read different data files ({', '.join(differ)} differ; SHA-256 of "
                            f"{first}: {shas}); their metrics are not comparable")
        if len({_test_set_key(r) for r in same}) > 1:
            sizes = ", ".join(f"{r['run']}: {_fmt(r.get('split'))}, {r['test_n_samples']} test rows" for r in same)
            warnings.append(f"the runs{where} were scored on different test sets ({sizes}); "
                            "their metrics are not directly comparable")
    return warnings


def check_comparison_out(out: Path, option: str = "") -> None:
    """Refuse, before any work, a comparison folder that is a file (or lies under one), or whose
    output files are folders; ``option`` (e.g. ``--out``) prefixes the message."""
    from mlplab.io import blocking_file

    where = f"{option} {out}" if option else str(out)
    blocking = blocking_file(out, include_self=True)
    if blocking is not None:
        what = "is a file, not a folder" if blocking == out else f"{blocking} is a file, not a folder"
        raise ConfigError(f"{where}: {what}")
    for name in ("comparison.md", "comparison.png"):
        if (out / name).is_dir():
            raise ConfigError(f"{where}: {out / name} is a folder, not a file" if option
                              else f"{out / name}: is a folder, not a file")


def format_comparison_cell(key: str, value: Any) -> str:
    """How a :func:`compare_runs` value is shown in tables (shared with the CLI)."""
    if key in ("training_time_s", "inference_s_per_sample"):
        return _fmt_g(value)
    return printable(_fmt(value))


def write_comparison(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``comparison.md`` (table + figure link) and ``comparison.png`` into ``out_dir``."""
    from mlplab import plots

    out = Path(out_dir)
    check_comparison_out(out)
    rows = compare_runs(run_dirs)
    warnings = comparison_warnings(rows)
    names = [r["run"] for r in rows]
    if warnings:  # say in the legend which data each run was scored on
        names = [f"{r['run']} ({_fmt(r.get('dataset'))}, {r['test_n_samples']} test rows)" for r in rows]
    labels = dict(COMPARE_COLUMNS)
    bar_keys = ("accuracy", "balanced_accuracy", "roc_auc_ovr_macro", "roc_auc_ovo_macro")
    png = plots.comparison_bars(names, {labels[k]: [r[k] for r in rows] for k in bar_keys},
                                out / "comparison.png", title="Test-set metrics by run")
    header = [label for _, label in COMPARE_COLUMNS]
    table = [[format_comparison_cell(k, r[k]) for k, _ in COMPARE_COLUMNS] for r in rows]
    blocks: list[tuple] = [
        ("h1", "Run comparison"),
        ("p", ("Test-set metrics; AUCs over the whole test set; inference is the forward pass of the "
               "whole set divided by its rows.")),
    ]
    blocks += [("p", f"Warning: {w}.") for w in warnings]
    blocks += [
        ("table", header, table),
        ("img", "Test-set metrics by run", "comparison.png"),
    ]
    md = atomic_write_text(out / "comparison.md", render_markdown(blocks))
    return [md, png]
