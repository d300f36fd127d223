"""Evaluation metrics: scikit-learn does the arithmetic, this module decides what to compute.

Everything returned is JSON-able (Python ``float``/``int``/``str``/``None``, lists and dicts;
no NumPy scalars and no NaN): an undefined value is ``None`` and the reason is in ``notes``.

Three AUC definitions coexist in the literature this project reproduces (see
``report-protocols.md``), so all of them are reported side by side and named precisely:

* ``roc_auc_ovr_macro``: one-vs-rest AUC of every class over the *whole* set, unweighted mean;
* ``roc_auc_ovo_macro``: Hand & Till one-vs-one AUC, unweighted mean over class pairs;
* ``roc_auc_ovr_micro`` / ``roc_auc_ovr_weighted``: pooled / support-weighted one-vs-rest;
* :func:`chunked_ovr_auc`: report 1's mean over consecutive chunks of 100 rows of the per-chunk
  macro OvR AUC. It is neither of the above and is only kept to reproduce that report.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from mlplab.errors import MlplabError

__all__ = [
    "MetricsInputError",
    "binary_metrics",
    "chunked_ovr_auc",
    "classification_metrics",
]

# Rows of ``proba`` must sum to one within this tolerance (float32 softmax rows are within
# ~1e-6; sigmoid outputs of an MSE network are not probabilities and must be normalised first).
_ROW_SUM_ATOL = 1e-3


class MetricsInputError(MlplabError, ValueError):
    """Labels or scores passed to a metric have the wrong shape, range or values."""


# ----------------------------------------------------------------------------- validation


def _check_labels(y_true: Any, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise MetricsInputError(f"{name} must be a 1-D array of class indices, got shape {y.shape}")
    if y.size == 0:
        raise MetricsInputError(f"{name} is empty")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise MetricsInputError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    return y.astype(np.int64, copy=False)


def _check_proba(y: np.ndarray, proba: Any) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise MetricsInputError(f"proba must be a 2-D array (n_samples, n_classes), got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise MetricsInputError(f"proba has {p.shape[0]} rows but y_true has {y.shape[0]} labels")
    if p.shape[1] < 2:
        raise MetricsInputError(f"proba needs at least 2 columns (classes), got {p.shape[1]}")
    if not np.all(np.isfinite(p)):
        raise MetricsInputError("proba holds NaN or infinite values")
    if p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise MetricsInputError("proba values must lie in [0, 1]")
    dev = float(np.max(np.abs(p.sum(axis=1) - 1.0)))
    if dev > _ROW_SUM_ATOL:
        raise MetricsInputError(
            f"proba rows must sum to 1 (largest deviation {dev:.3g}); normalise sigmoid outputs first"
        )
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise MetricsInputError(f"y_true holds labels outside 0..{k - 1} (proba has {k} columns)")
    # Exact renormalisation in float64 so scikit-learn's strict sum checks pass for float32 input.
    p = np.clip(p, 0.0, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def _class_names(classes: Sequence[Any] | None, k: int) -> list[str]:
    if classes is None:
        return [str(i) for i in range(k)]
    names = [str(c) for c in classes]
    if len(names) != k:
        raise MetricsInputError(f"classes has {len(names)} names but proba has {k} columns")
    if len(set(names)) != k:
        raise MetricsInputError("classes must be distinct names")
    return names


def _f(x: Any) -> float | None:
    """A Python float, or ``None`` for NaN/None."""
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else x


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer, int)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return _f(obj)
    return obj


def _report_dict(report: dict[str, Any]) -> dict[str, Any]:
    """sklearn's ``output_dict`` with JSON types, ``None`` for NaN and integer supports."""
    out = _jsonable(report)
    for value in out.values():
        if isinstance(value, dict) and value.get("support") is not None:
            value["support"] = int(value["support"])
    return out


# ----------------------------------------------------------------------------- AUC helpers


def _binary_auc(y01: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of one binary problem, or ``None`` when only one class is present."""
    if y01.min() == y01.max():
        return None
    return float(skm.roc_auc_score(y01, score))


def _ovo_macro(y: np.ndarray, p: np.ndarray, present: list[int]) -> float | None:
    """Hand & Till OvO macro AUC over the pairs of present classes (sklearn's own loop)."""
    pair_scores = []
    for a, b in combinations(present, 2):
        mask = (y == a) | (y == b)
        ya = (y[mask] == a).astype(int)
        auc_a = skm.roc_auc_score(ya, p[mask, a])
        auc_b = skm.roc_auc_score(1 - ya, p[mask, b])
        pair_scores.append((auc_a + auc_b) / 2.0)
    return float(np.mean(pair_scores)) if pair_scores else None


def _auc_block(y: np.ndarray, p: np.ndarray, names: list[str], notes: list[str]) -> dict[str, Any]:
    k = p.shape[1]
    counts = np.bincount(y, minlength=k)
    present = [c for c in range(k) if counts[c] > 0]
    n = y.shape[0]
    onehot = np.eye(k, dtype=np.int64)[y]  # (n, k)
    per_class = {
        names[c]: (_binary_auc(onehot[:, c], p[:, c]) if 0 < counts[c] < n else None) for c in range(k)
    }
    out: dict[str, Any] = {"roc_auc_per_class_ovr": per_class}
    if len(present) < 2:
        notes.append("ROC AUC is undefined: y_true holds a single class")
        out.update(roc_auc_ovr_macro=None, roc_auc_ovo_macro=None, roc_auc_ovr_micro=None, roc_auc_ovr_weighted=None)
        return out
    labels = list(range(k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if len(present) == k:
            if k == 2:
                # scikit-learn's binary path: AUC of the positive-class column; every definition agrees.
                auc = float(skm.roc_auc_score(y, p[:, 1]))
                out.update(roc_auc_ovr_macro=auc, roc_auc_ovo_macro=auc, roc_auc_ovr_weighted=auc)
                out["roc_auc_ovr_micro"] = float(skm.roc_auc_score(onehot.ravel(), p.ravel()))
            else:
                for avg in ("macro", "micro", "weighted"):
                    out[f"roc_auc_ovr_{avg}"] = float(
                        skm.roc_auc_score(y, p, multi_class="ovr", average=avg, labels=labels)
                    )
                out["roc_auc_ovo_macro"] = float(
                    skm.roc_auc_score(y, p, multi_class="ovo", average="macro", labels=labels)
                )
            return out
        # Some of the model's classes are absent from y_true: the per-class AUCs averaged over the
        # present ones; micro pools every (row, class) decision, an absent class's all negative
        # (scikit-learn's micro average of the one-hot targets over all the model's classes)
        sub_y, sub_p = onehot[:, present], p[:, present]
        out["roc_auc_ovr_macro"] = float(skm.roc_auc_score(sub_y, sub_p, average="macro"))
        out["roc_auc_ovr_weighted"] = float(skm.roc_auc_score(sub_y, sub_p, average="weighted"))
        out["roc_auc_ovr_micro"] = float(skm.roc_auc_score(onehot.ravel(), p.ravel()))
        out["roc_auc_ovo_macro"] = _ovo_macro(y, p, present)
    missing = [names[c] for c in range(k) if counts[c] == 0]
    notes.append(
        "macro, weighted and one-vs-one ROC AUCs are averaged over the {} classes present in y_true "
        "(micro pools every class's column); absent: {}".format(len(present), ", ".join(missing))
    )
    return out


# ----------------------------------------------------------------------------- public API


def classification_metrics(y_true: Any, proba: Any, classes: Sequence[Any] | None = None) -> dict[str, Any]:
    """Every multiclass metric of one evaluation, as a JSON-able dict.

    Parameters
    ----------
    y_true : array of int, shape (n,)
        Class indices ``0..k-1``.
    proba : array of float, shape (n, k)
        Class probabilities; rows sum to 1.
    classes : sequence of k names, optional
        Display names of the classes (default ``"0".."k-1"``); keys of the per-class dicts.

    Returns
    -------
    dict with ``accuracy`` (exactly ``accuracy_score(y_true, proba.argmax(1))``),
    ``balanced_accuracy``, ``log_loss``, ``roc_auc_ovr_macro``, ``roc_auc_ovo_macro``,
    ``roc_auc_ovr_micro``, ``roc_auc_ovr_weighted``, ``roc_auc_per_class_ovr``,
    ``classification_report`` (sklearn ``output_dict``), ``confusion_matrix`` (counts, rows =
    true), ``confusion_matrix_normalized`` (rows sum to 1; ``None`` rows for absent classes),
    ``majority_baseline``, ``majority_class``, ``n_samples``, ``classes``, ``missing_classes``
    and ``notes`` (why any value is ``None``). ``majority_baseline`` is the accuracy of always
    predicting ``y_true``'s own most common class (``majority_class``): the best any constant
    prediction scores on this set, so a model must beat it to have learned anything (a class
    chosen from the training labels instead can only score the same or lower).
    """
    y = _check_labels(y_true)
    p = _check_proba(y, proba)
    n, k = p.shape
    names = _class_names(classes, k)
    labels = list(range(k))
    # argmax of the caller's array, untouched by the float64 renormalisation (ties stay ties).
    y_pred = np.asarray(proba).argmax(axis=1)
    counts = np.bincount(y, minlength=k)
    missing = [names[c] for c in range(k) if counts[c] == 0]
    notes: list[str] = []
    if missing:
        notes.append("classes absent from y_true: " + ", ".join(missing))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        accuracy = float(skm.accuracy_score(y, y_pred))
        balanced = float(skm.balanced_accuracy_score(y, y_pred))
        # Clip away exact 0/1 so one confident mistake gives a large finite loss, not inf.
        eps = float(np.finfo(np.float64).eps)
        pc = np.clip(p, eps, 1.0)
        pc /= pc.sum(axis=1, keepdims=True)
        loss = float(skm.log_loss(y, pc, labels=labels))
        report = skm.classification_report(
            y, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=np.nan
        )
    undefined = [
        f"{cls} {field}"
        for cls in names
        for field in ("precision", "recall", "f1-score")
        if not np.isfinite(float(report[cls][field]))
    ]
    if undefined:
        notes.append("undefined (0/0) per-class values reported as null: " + ", ".join(undefined))

    cm = skm.confusion_matrix(y, y_pred, labels=labels)
    cm_norm: list[list[float] | None] = []
    for row in cm:
        s = row.sum()
        cm_norm.append([float(v) / float(s) for v in row] if s > 0 else None)

    out: dict[str, Any] = {
        "n_samples": int(n),
        "classes": names,
        "missing_classes": missing,
        "accuracy": accuracy,
        "balanced_accuracy": balanced,
        "log_loss": loss,
    }
    out.update(_auc_block(y, p, names, notes))
    majority = int(np.argmax(counts))
    out.update(
        {
            "majority_baseline": float(counts[majority]) / float(n),
            "majority_class": names[majority],
            "classification_report": _report_dict(report),
            "confusion_matrix": cm.astype(int).tolist(),
            "confusion_matrix_normalized": cm_norm,
            "notes": notes,
        }
    )
    return _jsonable(out)


def chunked_ovr_auc(y_true: Any, proba: Any, chunk: int = 100) -> dict[str, Any]:
    """Report 1's "macro AUC": the mean over consecutive unshuffled chunks of per-chunk macro OvR AUC.

    Each chunk of ``chunk`` rows (the last one may be shorter) is scored as the report did with
    ``roc_auc_score(onehot, proba, average="macro")``: because the target is one-hot
    (multilabel-indicator) scikit-learn returns the mean of the per-class one-vs-rest AUCs,
    whatever ``multi_class`` says. Those per-class AUCs are computed here for all chunks at once
    by the rank-sum formula (the same areas; the tests compare with the scikit-learn loop), which
    takes milliseconds where 2,100 ``roc_auc_score`` calls took seconds. The report's loop only
    worked when every chunk held every class; chunks lacking one (or made of a single class) are
    skipped here and counted.

    Returns
    -------
    dict ``{"value": float | None, "n_chunks": int, "n_used": int, "n_skipped": int, "chunk": int}``;
    ``value`` is ``None`` if every chunk was skipped. This is *not* a global AUC; compare it with
    ``roc_auc_ovr_macro`` / ``roc_auc_ovo_macro`` of :func:`classification_metrics`.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise MetricsInputError(f"chunk must be a positive integer, got {chunk!r}")
    y = _check_labels(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise MetricsInputError(f"proba must have shape ({y.shape[0]}, k), got {p.shape}")
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise MetricsInputError(f"y_true holds labels outside 0..{k - 1} (proba has {k} columns)")
    n, c = y.shape[0], int(chunk)
    scores: list[float | None] = []
    n_full = n // c
    # The full chunks at once, then the shorter last one; per chunk the macro mean of the
    # per-class AUCs (scikit-learn's roc_auc_score on the one-hot target gives the same values).
    parts = []
    if n_full:
        parts.append((y[: n_full * c].reshape(n_full, c), p[: n_full * c].reshape(n_full, c, k)))
    if n_full * c < n:
        parts.append((y[n_full * c :][None, :], p[n_full * c :][None, :, :]))
    for yc, pc in parts:
        scores.extend(_chunk_macro_auc(yc, pc, k))
    n_chunks = len(scores)
    scores = [v for v in scores if v is not None]
    return {
        "value": float(np.mean(scores)) if scores else None,
        "n_chunks": n_chunks,
        "n_used": len(scores),
        "n_skipped": n_chunks - len(scores),
        "chunk": int(chunk),
    }


def _chunk_macro_auc(y: np.ndarray, p: np.ndarray, k: int) -> list[float | None]:
    """Per chunk (rows of ``y`` (m, c), ``p`` (m, c, k)): the mean over classes of the one-vs-rest
    AUC, by the rank-sum (Mann-Whitney) formula with average ranks for tied scores, which is the
    area under scikit-learn's ROC curve; ``None`` where some class is absent or fills the chunk."""
    from scipy.stats import rankdata

    pos = y[:, None, :] == np.arange(k)[None, :, None]  # (m, k, c)
    ranks = rankdata(np.swapaxes(p, 1, 2), axis=-1)  # (m, k, c)
    n_pos = pos.sum(axis=-1).astype(np.float64)
    n_neg = y.shape[1] - n_pos
    ok = np.all((n_pos > 0) & (n_neg > 0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (np.sum(ranks * pos, axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return [float(np.mean(auc[i])) if ok[i] else None for i in range(y.shape[0])]


def binary_metrics(y_true01: Any, score: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of one binary (e.g. one-vs-rest) classifier, with the trivial baseline next to them.

    Parameters
    ----------
    y_true01 : array of {0, 1}, shape (n,)
    score : array of float, shape (n,)
        Higher means "more positive" (a probability or any monotone score).
    threshold : float
        Predict 1 where ``score >= threshold`` (report 2 used 0.75).

    Returns
    -------
    dict with ``accuracy``, ``baseline_accuracy`` (predicting all negative), ``beats_baseline``,
    ``balanced_accuracy``, ``roc_auc``, ``f1``, ``precision``, ``recall`` (at ``threshold``),
    ``youden_threshold`` and ``youden_balanced_accuracy`` (threshold maximising TPR - FPR),
    ``threshold``, ``n_samples``, ``n_positive`` and ``notes``. Undefined values are ``None``.
    """
    y = _check_labels(y_true01, "y_true01")
    if not np.all((y == 0) | (y == 1)):
        raise MetricsInputError("y_true01 must hold only 0 and 1")
    s = np.asarray(score, dtype=np.float64)
    if s.shape != y.shape:
        raise MetricsInputError(f"score must have shape {y.shape}, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise MetricsInputError("score holds NaN or infinite values")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise MetricsInputError(f"threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(threshold):
        raise MetricsInputError("threshold must be finite")
    notes: list[str] = []
    y_pred = (s >= threshold).astype(np.int64)
    n_pos = int(y.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        accuracy = float(skm.accuracy_score(y, y_pred))
        balanced = float(skm.balanced_accuracy_score(y, y_pred))
        precision = _f(skm.precision_score(y, y_pred, zero_division=np.nan))
        recall = _f(skm.recall_score(y, y_pred, zero_division=np.nan))
        f1 = _f(skm.f1_score(y, y_pred, zero_division=np.nan))
    if precision is None:
        notes.append("precision is undefined: nothing predicted positive")
    if recall is None:
        notes.append("recall is undefined: no positive samples")
    baseline = float(np.mean(y == 0))
    auc = _binary_auc(y, s)
    youden_t = youden_bal = None
    if auc is None:
        notes.append("ROC AUC and the Youden threshold are undefined: y_true01 holds a single class")
    else:
        fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
        j = tpr - fpr
        finite = np.isfinite(thr)
        best = int(np.argmax(np.where(finite, j, -np.inf)))
        youden_t = float(thr[best])
        youden_bal = float(skm.balanced_accuracy_score(y, (s >= youden_t).astype(np.int64)))
    return {
        "n_samples": int(y.shape[0]),
        "n_positive": n_pos,
        "threshold": threshold,
        "accuracy": accuracy,
        "baseline_accuracy": baseline,
        "beats_baseline": bool(accuracy > baseline),
        "balanced_accuracy": balanced,
        "roc_auc": auc,
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "youden_threshold": youden_t,
        "youden_balanced_accuracy": youden_bal,
        "notes": notes,
    }
