"""Inference timing, measured on its own: the forward pass only, never mixed with metric calls.

Report 1's "inference time" wrapped the forward pass *and* ``confusion_matrix`` and
``classification_report`` in one ``time.time()`` window. Here :func:`measure_inference` times
nothing but ``predict_fn`` with :func:`time.perf_counter`, repeats the measurement, and reports
robust statistics (median, min/max, inter-quartile range) per batch size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlplab.errors import ConfigError

__all__ = ["batch_key", "measure_inference"]


def batch_key(batch_size: int | None) -> str:
    """The JSON key of a batch size in :func:`measure_inference`'s result (``None`` -> ``"all"``)."""
    return "all" if batch_size is None else str(int(batch_size))


def _check(batch_sizes: Sequence[int | None], repeats: int, warmup: int, max_seconds: float, max_calls: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
        raise ConfigError(f"warmup must be a non-negative integer, got {warmup!r}")
    if isinstance(max_calls, bool) or not isinstance(max_calls, (int, np.integer)) or max_calls < 1:
        raise ConfigError(f"max_calls must be a positive integer, got {max_calls!r}")
    try:
        ok = float(max_seconds) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"max_seconds must be a positive number, got {max_seconds!r}")
    if len(batch_sizes) == 0:
        raise ConfigError("batch_sizes is empty")
    for b in batch_sizes:
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1):
            raise ConfigError(f"batch sizes must be positive integers or None (whole set), got {b!r}")


def _one_pass(predict_fn: Callable[[np.ndarray], Any], X: np.ndarray, batch: int) -> float:
    """Seconds for one pass of ``predict_fn`` over ``X`` in slices of ``batch`` rows."""
    n = X.shape[0]
    start = time.perf_counter()
    for i in range(0, n, batch):
        predict_fn(X[i : i + batch])
    return time.perf_counter() - start


def measure_inference(
    predict_fn: Callable[[np.ndarray], Any],
    X: Any,
    batch_sizes: Sequence[int | None] = (1, 100, None),
    repeats: int = 5,
    warmup: int = 1,
    max_seconds: float = 30.0,
    max_calls: int = 1000,
) -> dict[str, dict[str, Any]]:
    """Time ``predict_fn`` over the rows of ``X`` at several batch sizes.

    Parameters
    ----------
    predict_fn : callable
        ``predict_fn(X_batch)`` with ``X_batch`` of shape (b, d); its result is discarded.
    X : array, shape (n, d)
        Rows to predict on (e.g. the test set).
    batch_sizes : sequence of int or None
        ``None`` means the whole set in one call.
    repeats : int
        Timed passes per batch size (fewer if ``max_seconds`` runs out; at least one).
    warmup : int
        Untimed passes before the timed ones (caches, lazy allocations).
    max_seconds : float
        Soft time budget per batch size: no new pass starts once it is spent.
    max_calls : int
        At most this many ``predict_fn`` calls per pass: batch size 1 times the first
        ``max_calls`` rows (1000 by default), not all 21,000.

    Returns
    -------
    dict keyed by :func:`batch_key` (``"1"``, ``"100"``, ``"all"``); each value holds
    ``batch_size`` (int or None), ``rows`` (rows per pass), ``calls`` (calls per pass),
    ``repeats`` (timed passes done), ``median_s``, ``min_s``, ``max_s``, ``iqr_s`` (seconds per
    pass), ``seconds_per_sample`` (median / rows) and ``samples_per_second`` (rows / median).
    Clock: :func:`time.perf_counter`.
    """
    X = np.asarray(X)
    if X.ndim < 1 or X.shape[0] == 0:
        raise ConfigError("measure_inference needs at least one row in X")
    _check(batch_sizes, repeats, warmup, max_seconds, max_calls)
    n = X.shape[0]
    results: dict[str, dict[str, Any]] = {}
    for b in batch_sizes:
        batch = n if b is None else min(int(b), n)
        rows = min(n, batch * int(max_calls))
        Xb = X[:rows]
        budget_start = time.perf_counter()
        for _ in range(int(warmup)):
            _one_pass(predict_fn, Xb, batch)
        times: list[float] = []
        while len(times) < int(repeats):
            times.append(_one_pass(predict_fn, Xb, batch))
            if time.perf_counter() - budget_start > float(max_seconds):
                break
        t = np.asarray(times, dtype=np.float64)
        median = float(np.median(t))
        q1, q3 = (float(v) for v in np.percentile(t, [25.0, 75.0]))
        results[batch_key(b)] = {
            "batch_size": None if b is None else int(b),
            "rows": int(rows),
            "calls": int(-(-rows // batch)),
            "repeats": int(t.size),
            "median_s": median,
            "min_s": float(t.min()),
            "max_s": float(t.max()),
            "iqr_s": q3 - q1,
            "seconds_per_sample": median / rows,
            "samples_per_second": (rows / median) if median > 0 else None,
        }
    return results
