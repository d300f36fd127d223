"""Numerical gradient checking: central differences in float64 over every parameter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlplab.errors import ConfigError
from mlplab.network import MLP


@dataclass(frozen=True)
class GradCheckResult:
    max_rel_error: float
    per_parameter: list[tuple[str, float]]  # ("W0", err), ("b0", err), ...
    n_checked: int

    def passed(self, tol: float = 1e-6) -> bool:
        return self.max_rel_error < tol


#: Entries whose gradients are both below ``REL_ERROR_FLOOR * max(1, |loss|)`` are compared
#: absolutely. A central difference carries float64 round-off of about ``2**-52 * |loss| / eps``
#: (a few 1e-12 for a loss of order 1) whatever the true gradient, so an exactly-zero gradient (a
#: dead ReLU unit, the weights of an always-zero input column) differs from its finite difference
#: by a few 1e-12. A floor of 1e-6 read that as a relative error of a few 1e-6 and failed correct
#: networks; 1e-4 reads it as a few 1e-8, while an error above ``1e-10 * max(1, |loss|)`` on a
#: tiny entry, or a relative error above the tolerance on a larger one, still fails.
REL_ERROR_FLOOR = 1e-4


def rel_error(a: np.ndarray, b: np.ndarray, floor: float = REL_ERROR_FLOOR) -> np.ndarray:
    """``|a - b| / max(|a| + |b|, floor)``, elementwise: relative for large entries, absolute
    (divided by ``floor``) for tiny ones (PyTorch's gradcheck, by comparison, accepts
    ``|a - b| <= 1e-5 + 1e-3 |b|``)."""
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)


def gradcheck(net: MLP, X: np.ndarray, y: np.ndarray, eps: float = 1e-4,
              max_entries: int | None = None, seed: int = 0) -> GradCheckResult:
    """Compare backpropagation with central differences of the loss.

    The five-point central stencil
    ``(-L(p+2e) + 8 L(p+e) - 8 L(p-e) + L(p-2e)) / 12e`` has truncation error O(e^4), so a
    step of 1e-4 keeps both truncation and float64 round-off near 1e-12 absolute; the simple
    ``(L(p+e) - L(p-e)) / 2e`` cannot get below about 1e-10, which is a large *relative*
    error for the tiny gradients of saturated sigmoid units.

    Resolution: a central difference carries round-off of about ``2**-52 * |loss| / eps``, so
    gradient entries smaller than about ``1e-10 * max(1, |loss|)`` cannot be verified by any
    finite difference; they are compared absolutely (see :data:`REL_ERROR_FLOOR`). Near a kink
    (ReLU at 0) the stencil straddles the kink and disagrees with either one-sided derivative:
    keep pre-activations farther than a few ``eps`` from 0 (the CLI's ``gradcheck`` does).

    The network must be float64. Dropout masks are held fixed by replaying the dropout
    generator's state before every evaluation. ``max_entries`` checks a random subset of
    each parameter's entries (all by default).
    """
    if net.dtype != np.float64:
        raise ConfigError("gradient checks need a float64 network (dtype='float64')")
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y)
    state = net.dropout_rng.bit_generator.state

    def loss_and_grads() -> tuple[float, list[np.ndarray]]:
        net.dropout_rng.bit_generator.state = state
        value = net.loss_and_gradients(X, y)
        return value, [g.copy() for g in net.gradients()]

    def loss_only() -> float:
        net.dropout_rng.bit_generator.state = state
        out = net.forward(X, training=True)
        return net.loss.value(out, y) + net.penalty()

    value, analytic = loss_and_grads()
    floor = REL_ERROR_FLOOR * max(1.0, abs(float(value)))  # round-off grows with the loss
    rng = np.random.default_rng(seed)
    per, worst, count = [], 0.0, 0
    for i, (p, g) in enumerate(zip(net.parameters(), analytic)):
        flat = p.reshape(-1)
        idx = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            idx = rng.choice(flat.size, size=max_entries, replace=False)
        numeric = np.empty(len(idx))
        for j, k in enumerate(idx):
            old = flat[k]
            f = {}
            for step in (-2, -1, 1, 2):
                flat[k] = old + step * eps
                f[step] = loss_only()
            flat[k] = old
            numeric[j] = (-f[2] + 8 * f[1] - 8 * f[-1] + f[-2]) / (12 * eps)
        err = float(rel_error(g.reshape(-1)[idx], numeric, floor).max()) if len(idx) else 0.0
        name = ("W" if i % 2 == 0 else "b") + str(i // 2)
        per.append((name, err))
        worst = max(worst, err)
        count += len(idx)
    net.dropout_rng.bit_generator.state = state
    return GradCheckResult(worst, per, count)
