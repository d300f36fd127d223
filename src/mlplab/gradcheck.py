"""Numerical gradient checking: central differences in float64 over every parameter."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlplab.errors import ConfigError
from mlplab.network import MLP


@dataclass(frozen=True)
class GradCheckResult:
    max_rel_error: float
    per_parameter: list[tuple[str, float]]  # ("W0", err), ("b0", err), ...: the worst over the paths
    n_checked: int
    #: the worst error of each way the gradients are computed (see :func:`gradcheck`)
    per_path: dict[str, float] = field(default_factory=dict)

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

    Every way training computes gradients is checked against the same central differences
    (``per_path``): ``"backward"`` (:meth:`MLP.loss_and_gradients`, layer by layer), ``"bound
    step"`` (the bound calls :class:`~mlplab.training.Trainer` and the estimator train with:
    the bound loss and backward, :func:`mlplab.training.bind_training_step`), ``"fused SGD
    step"`` (the same with plain SGD fused into the weight products, the update divided back by
    the learning rate, 1, so it is the gradient to rounding) and ``"unbound fused SGD step"``
    (:meth:`MLP.backward_step`, the fused step through the layers' own calls, as full-batch
    plain SGD, ``bind_steps=False``, stacked training and the estimator run it; its update
    read the same way). A network that cannot be bound is checked on the two unbound paths.

    The L2 penalty is part of the checked loss (as in :meth:`MLP.loss_and_gradients`), unlike
    the loss a :class:`~mlplab.training.Trainer` records. Labels are checked as
    :meth:`Trainer.fit <mlplab.training.Trainer.fit>` checks them: one outside the classes
    would be read as another class (or another row's) by the losses' unchecked indexing.

    The network must be float64. Dropout masks are held fixed by replaying the dropout
    generator's state before every evaluation. ``max_entries`` checks a random subset of
    each parameter's entries (all by default). The weights are left as they were.
    """
    if net.dtype != np.float64:
        raise ConfigError("gradient checks need a float64 network (dtype='float64')")
    X = net._as_input(X)
    y = net._as_labels(y, X.shape[0])
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
    paths = {"backward": analytic, **_step_gradients(net, X, y, state)}
    floor = REL_ERROR_FLOOR * max(1.0, abs(float(value)))  # round-off grows with the loss
    rng = np.random.default_rng(seed)
    per, count = [], 0
    per_path = dict.fromkeys(paths, 0.0)
    for i, p in enumerate(net.parameters()):
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
        errs = {path: float(rel_error(grads[i].reshape(-1)[idx], numeric, floor).max()) if len(idx) else 0.0
                for path, grads in paths.items()}
        for path, err in errs.items():
            per_path[path] = max(per_path[path], err)
        name = ("W" if i % 2 == 0 else "b") + str(i // 2)
        per.append((name, max(errs.values())))
        count += len(idx)
    net.dropout_rng.bit_generator.state = state
    return GradCheckResult(max(per_path.values()), per, count, per_path)


def _step_gradients(net: MLP, X: np.ndarray, y: np.ndarray, state: dict) -> dict[str, list[np.ndarray]]:
    """The gradients as the training loops compute them: through the bound step, the bound step
    with plain SGD fused in and the unbound fused step (:meth:`MLP.backward_step`). The fused
    steps run with learning rate 1: ``W_before - W_after`` is the gradient. The bound paths are
    left out if the network cannot be bound. The weights are restored afterwards."""
    from mlplab.training import bind_training_step

    weights = net.get_weights()
    yb = np.ascontiguousarray(y, dtype=np.int64)
    out: dict[str, list[np.ndarray]] = {}

    def update() -> list[np.ndarray]:  # the step's update, then the weights back as they were
        delta = [w - p for w, p in zip(weights, net.parameters())]
        net.set_weights(weights)
        return delta

    try:
        net.dropout_rng.bit_generator.state = state
        step = bind_training_step(net, X, yb, None)
        if step is not None:
            step.forward_loss()
            step.run_backward()
            out["bound step"] = [g.copy() for g in net.gradients()]
            net.dropout_rng.bit_generator.state = state
            fused = bind_training_step(net, X, yb, 1.0)
            if fused is not None:
                fused.forward_loss()  # (the loops multiply grad by the learning rate here: 1)
                fused.run_backward()
                out["fused SGD step"] = update()
        net.dropout_rng.bit_generator.state = state  # as Trainer's unbound plain-SGD minibatch
        z = net.forward(X, training=True)
        grad = net.layers[-1]._buffer("dout", z.shape, net.dtype)
        net.loss.value_and_grad(z, yb, grad, target_buf=net.layers[-1]._buffer("target", z.shape, net.dtype))
        net.backward_step(grad, 1.0, overwrite_grad=True)
        out["unbound fused SGD step"] = update()
    finally:
        net.set_weights(weights)
        net.release()  # the steps' buffers: gradcheck's X is not a training minibatch
    return out
