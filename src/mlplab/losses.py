"""Losses on a minibatch, reduced to a batch mean; the only place that divides by the batch size.

Valid pairings of output activation and loss (checked by :func:`check_pairing`):

* ``mse`` with any output activation. The network's graph includes the output activation and
  the loss sees its output ``a``. Reduction: **sum over outputs, mean over samples**,
  ``L = (1/n) sum_i sum_k (a_ik - y_ik)^2``, so ``dL/da = 2 (a - y) / n``: exactly the
  textbook's gradient (Raschka, ch. 11). The textbook *prints* ``mean((a - y)^2)`` over all
  entries, which is ``L / n_outputs`` (see :meth:`MSE.textbook_value`).
* ``cross_entropy`` with a ``softmax`` output, fused on the logits ``z``:
  ``L = mean_i(logsumexp(z_i) - z_iy)``, ``dL/dz = (softmax(z) - onehot(y)) / n``.
* ``binary_cross_entropy`` with a ``sigmoid`` output, fused on the logits ``z``:
  ``L = mean_i sum_k(softplus(z_ik) - y_ik z_ik)``, ``dL/dz = (sigmoid(z) - y) / n``. With one
  output unit the targets are 0/1 labels; with k units they are one-hot (one-vs-rest).

All values stay finite for logits of any magnitude (log-sum-exp, ``logaddexp``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from mlplab.activations import sigmoid
from mlplab.blas import dot
from mlplab.errors import ConfigError
from mlplab.registry import Registry, check_settings

LOSSES: Registry[type["Loss"]] = Registry("loss")


class Loss:
    name = "loss"
    #: output activation the loss is fused with (the graph then ends at the logits)
    fused_activation: str | None = None

    def __init__(self, n_outputs: int, dtype=np.float32, denominator: float | None = None):
        self.n_outputs = int(n_outputs)
        self.dtype = np.dtype(dtype)
        #: divide gradients by this instead of the batch size (report 2 divided by n_features)
        self.denominator = denominator
        self._eye = np.eye(max(self.n_outputs, 2), dtype=self.dtype)

    # -- targets ---------------------------------------------------------------------------
    def targets(self, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Dense targets of shape ``(n, n_outputs)`` from integer labels ``y`` of shape ``(n,)``."""
        y = np.asarray(y)
        if self.n_outputs == 1:
            t = y.reshape(-1, 1).astype(self.dtype, copy=False)
            if out is not None:
                np.copyto(out, t)
                return out
            return t
        if out is None:
            return np.take(self._eye[: self.n_outputs, : self.n_outputs], y, axis=0)
        return np.take(self._eye[: self.n_outputs, : self.n_outputs], y, axis=0, out=out, mode="clip")

    def _scale(self, n: int) -> float:
        return 1.0 / (self.denominator if self.denominator else n)

    # -- interface ---------------------------------------------------------------------------
    def value(self, out: np.ndarray, y: np.ndarray) -> float:
        """Mean loss of a batch (no gradient)."""
        raise NotImplementedError

    def value_and_grad(self, out: np.ndarray, y: np.ndarray, grad: np.ndarray,
                       target_buf: np.ndarray | None = None) -> float:
        """Return the batch-mean loss and write ``dL/d(out)`` into ``grad`` (same shape as out)."""
        raise NotImplementedError

    def bind_value_and_grad(self, out: np.ndarray, y: np.ndarray, grad: np.ndarray,
                            target_buf: np.ndarray | None = None) -> Callable[[], float]:
        """A call with no arguments doing ``value_and_grad(out, y, grad, target_buf)`` on these
        arrays' current contents (a training loop's fixed buffers)."""
        return partial(self.value_and_grad, out, y, grad, target_buf=target_buf)

    def link(self, out: np.ndarray) -> np.ndarray:
        """Map the graph's output to per-class scores (probabilities for fused losses)."""
        return out

    def config(self) -> dict:
        cfg = {"name": self.name}
        if self.denominator:
            cfg["denominator"] = self.denominator
        return cfg


@LOSSES.register("mse", "mean_squared_error")
class MSE(Loss):
    name = "mse"

    def value(self, out, y):
        d = out - self.targets(y)
        return float(dot(d, d)) / out.shape[0]

    def textbook_value(self, out, y) -> float:
        """``mean((a - y)^2)`` over all entries: what the textbook prints as MSE."""
        return self.value(out, y) / self.n_outputs

    def value_and_grad(self, out, y, grad, target_buf=None):
        t = self.targets(y, out=target_buf)
        np.subtract(out, t, out=grad)  # a - y
        value = float(dot(grad, grad)) / out.shape[0]
        grad *= 2.0 * self._scale(out.shape[0])  # 2 (a - y) / n
        return value

    def bind_value_and_grad(self, out, y, grad, target_buf=None):
        if self.n_outputs == 1 or target_buf is None or target_buf.shape != out.shape:
            return super().bind_value_and_grad(out, y, grad, target_buf)
        # value_and_grad's passes, with the one-hot table, the scalars and the ufuncs looked up once
        eye, n = self._eye[: self.n_outputs, : self.n_outputs], out.shape[0]
        factor = 2.0 * self._scale(n)
        take, subtract, multiply = eye.take, np.subtract, np.multiply

        def value_and_grad() -> float:
            take(y, axis=0, out=target_buf, mode="clip")
            subtract(out, target_buf, out=grad)
            value = float(dot(grad, grad)) / n
            multiply(grad, factor, out=grad)
            return value

        return value_and_grad


def _row_max(a: np.ndarray, out: np.ndarray) -> Callable[[], object]:
    """A call writing the maximum of each row of the 2-D ``a`` into ``out`` (1-D). For a few
    columns, a running ``np.maximum`` over the columns: NumPy's ``maximum.reduce`` along rows this
    short costs a loop per row (10.5 against 2.5 us for 200 rows of 10 floats). The maximum is
    exact either way: the same bits."""
    k = a.shape[1]
    if k > 32 or k < 2:
        return partial(np.maximum.reduce, a, axis=1, out=out)
    cols, maximum = [a[:, j] for j in range(k)], np.maximum

    def row_max() -> None:
        maximum(cols[0], cols[1], out=out)
        for c in cols[2:]:
            maximum(out, c, out=out)

    return row_max


@LOSSES.register("cross_entropy", "ce", "categorical_cross_entropy", "log_loss")
class CrossEntropy(Loss):
    name = "cross_entropy"
    fused_activation = "softmax"

    def _log_softmax_at(self, z, y):
        m = z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
        zy = np.take_along_axis(z, np.asarray(y).reshape(-1, 1), axis=1)[:, 0]
        return zy - lse

    def value(self, out, y):
        return float(-self._log_softmax_at(out, y).mean(dtype=np.float64))

    def value_and_grad(self, out, y, grad, target_buf=None):
        m = out.max(axis=1, keepdims=True)
        np.subtract(out, m, out=grad)  # z - max
        zy = np.take_along_axis(grad, np.asarray(y).reshape(-1, 1), axis=1)[:, 0]
        np.exp(grad, out=grad)
        s = grad.sum(axis=1, keepdims=True)
        value = float(np.mean(np.log(s[:, 0]) - zy, dtype=np.float64))
        grad /= s  # softmax(z)
        grad -= self.targets(y, out=target_buf)  # softmax - onehot
        grad *= self._scale(out.shape[0])
        return value

    def bind_value_and_grad(self, out, y, grad, target_buf=None):
        if target_buf is None or target_buf.shape != out.shape or out.ndim != 2 or self.n_outputs < 2:
            return super().bind_value_and_grad(out, y, grad, target_buf)
        # value_and_grad's passes on these buffers, the reductions writing into buffers too
        n, k = out.shape
        dt = out.dtype
        eye = self._eye[:k, :k]
        row_max, row_sum = np.empty((n, 1), dt), np.empty((n, 1), dt)
        flat_index = np.empty(n, np.intp)
        offsets = np.arange(n, dtype=np.intp) * k  # row starts in the flattened gradient
        zy, log_sum = np.empty(n, dt), np.empty(n, dt)
        grad_flat, sums = grad.reshape(-1), row_sum[:, 0]
        scale = self._scale(n)
        add = np.add.reduce
        subtract, exp, log, divide, multiply = np.subtract, np.exp, np.log, np.divide, np.multiply
        take_rows = eye.take
        row_max_of = _row_max(out, row_max[:, 0])

        def value_and_grad() -> float:
            row_max_of()
            subtract(out, row_max, out=grad)  # z - max
            np.add(offsets, y, out=flat_index)
            grad_flat.take(flat_index, out=zy)  # (z - max) at the label
            exp(grad, out=grad)
            add(grad, axis=1, keepdims=True, out=row_sum)
            log(sums, out=log_sum)
            subtract(log_sum, zy, out=log_sum)
            value = float(add(log_sum, dtype=np.float64)) / n
            divide(grad, row_sum, out=grad)  # softmax(z)
            take_rows(y, axis=0, out=target_buf, mode="clip")
            subtract(grad, target_buf, out=grad)  # softmax - onehot
            multiply(grad, scale, out=grad)
            return value

        if grad_flat.base is not grad and not np.shares_memory(grad_flat, grad):  # pragma: no cover
            return super().bind_value_and_grad(out, y, grad, target_buf)
        return value_and_grad

    def link(self, out):
        from mlplab.activations import softmax

        return softmax(out)


@LOSSES.register("binary_cross_entropy", "bce")
class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    fused_activation = "sigmoid"

    def value(self, out, y):
        t = self.targets(y)
        per = np.logaddexp(0, out) - t * out  # softplus(z) - y z
        return float(per.sum(dtype=np.float64)) / out.shape[0]

    def value_and_grad(self, out, y, grad, target_buf=None):
        value = self.value(out, y)
        sigmoid(out, out=grad)
        grad -= self.targets(y, out=target_buf)
        grad *= self._scale(out.shape[0])
        return value

    def link(self, out):
        return sigmoid(out)


def get_loss(spec: str | dict, n_outputs: int, dtype=np.float32) -> Loss:
    params = dict(spec) if isinstance(spec, dict) else {"name": spec}
    if "name" not in params:
        raise ConfigError(f"loss {spec!r}: a table needs a 'name'")
    cls = LOSSES.get(params.pop("name"))
    check_settings("loss", getattr(cls, "name", cls.__name__), cls, params, skip=("n_outputs", "dtype"))
    return cls(n_outputs, dtype=dtype, **params)


def check_pairing(output_activation: str, loss: Loss) -> None:
    """Raise ConfigError for a loss/output-activation pairing that makes no sense."""
    fused = loss.fused_activation
    if fused is not None and output_activation != fused:
        raise ConfigError(
            f"loss {loss.name!r} needs output activation {fused!r} (fused on the logits), "
            f"got {output_activation!r}"
        )
    if loss.name == "cross_entropy" and loss.n_outputs < 2:
        raise ConfigError("loss 'cross_entropy' needs at least 2 output units")
