"""Layers: ``Dense`` (affine), ``ActivationLayer`` and ``Dropout``.

A layer's ``forward(x, training)`` caches what its ``backward`` needs and ``backward(dy)``
returns the gradient with respect to its input. In training mode every layer writes into
buffers it owns, allocated once per batch size, so the training loop allocates nothing per
minibatch. In inference mode fresh arrays are returned (nothing is cached).
"""

from __future__ import annotations

import numpy as np

from mlplab.activations import Activation
from functools import partial

from mlplab.blas import axpy, bind_gemm, bind_gemv, gemm, gemv

#: a bound step: calls with no arguments, run in order (see :meth:`Layer.bind_forward`)
Calls = list


class Layer:
    params: tuple[np.ndarray, ...] = ()
    grads: tuple[np.ndarray, ...] = ()

    def __init__(self) -> None:
        self._buffers: dict[tuple, np.ndarray] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 16:  # many batch sizes seen: forget the old ones
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buf

    def release(self) -> None:
        """Drop cached buffers and references (after training)."""
        self._buffers.clear()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    # -- bound calls --------------------------------------------------------------------------
    # A training loop runs the same computation on the same buffers at every minibatch of a size.
    # ``bind_*`` return ``(calls, output)``: calls with no arguments that, run in order, do what
    # ``forward(x, training=True)`` / ``backward(dy)`` / ``backward_step(dz)`` would do on these
    # very arrays (the same NumPy and BLAS calls, so the same bits), with every check, buffer
    # lookup and argument list done once. ``None``: this layer cannot be bound (the caller keeps
    # calling the methods). Bind the layers in forward order, then backward.
    def bind_forward(self, x: np.ndarray) -> tuple[Calls, np.ndarray] | None:
        return None

    def bind_backward(self, dy: np.ndarray, need_dx: bool = True) -> tuple[Calls, np.ndarray | None] | None:
        return None


class Dense(Layer):
    """``z = b + x @ W`` with ``W`` of shape ``(fan_in, fan_out)``.

    ``shared_bias=True`` keeps one scalar bias for all units (a documented quirk of report 2).
    """

    def __init__(self, fan_in: int, fan_out: int, dtype=np.float32, shared_bias: bool = False):
        super().__init__()
        self.fan_in, self.fan_out, self.dtype = int(fan_in), int(fan_out), np.dtype(dtype)
        self.shared_bias = bool(shared_bias)
        self.W = np.zeros((self.fan_in, self.fan_out), dtype=self.dtype)
        self.b = np.zeros(1 if shared_bias else self.fan_out, dtype=self.dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.params = (self.W, self.b)
        self.grads = (self.dW, self.db)
        self._x: np.ndarray | None = None

    def forward(self, x, training=False):
        n = x.shape[0]
        if training:
            out = self._buffer("z", (n, self.fan_out), self.dtype)
            self._x = x
        else:
            out = np.empty((n, self.fan_out), dtype=np.result_type(x.dtype, self.dtype))
        # the bias goes in first and the product accumulates onto it (beta=1): one pass over
        # ``out`` fewer than ``out = x @ W; out += b`` (BLAS clears C before a beta=0 product)
        np.copyto(out, self.b)  # broadcast over the rows
        gemm(x, self.W, out, beta=1.0)  # (n, fan_in) @ (fan_in, fan_out)
        return out

    def backward(self, dz, need_dx=True, l2=0.0):
        """Fill ``dW = x.T @ dz + l2 * W`` and ``db``; return ``dx`` (if ``need_dx``). The L2
        term is added after the product by a BLAS ``axpy`` (multithreaded: for 784x256 weights
        and 200 rows the pair took 249 us against 277 us for NumPy's single-threaded
        ``dW = l2 * W`` followed by the product accumulating onto it)."""
        x = self._x
        gemm(x.T, dz, self.dW)  # (fan_in, n) @ (n, fan_out)
        if l2:
            axpy(l2, self.W, self.dW)  # + l2 * W
        self._bias_grad(dz)
        return self._dx(dz) if need_dx else None

    def backward_step(self, dz, need_dx=True, decay=1.0, update_bias=True):
        """Backpropagate ``dz`` (already multiplied by the learning rate) and apply the plain
        SGD step at once: ``W = decay * W - x.T @ dz`` in one BLAS call (``decay = 1 - lr * l2``
        for an L2 penalty), ``b -= sum(dz)``. Returns ``dx``, computed from the old ``W``.
        ``dW`` is not filled; ``update_bias=False`` leaves ``b`` to the caller."""
        dx = self._dx(dz) if need_dx else None
        gemm(self._x.T, dz, self.W, alpha=-1.0, beta=decay)
        if update_bias and self.shared_bias:
            self._shared_bias_step(dz)
        elif update_bias:  # b -= column sums of dz, one BLAS call
            gemv(dz.T, self._ones(dz.shape[0]), self.b, alpha=-1.0, beta=1.0)
        return dx

    def bind_forward(self, x):
        out = self._buffer("z", (x.shape[0], self.fan_out), self.dtype)
        self._x = x
        return [partial(np.copyto, out, self.b), bind_gemm(x, self.W, out, beta=1.0)], out

    def bind_backward(self, dz, need_dx=True, l2=0.0):
        x, calls = self._x, []
        calls.append(bind_gemm(x.T, dz, self.dW))
        if l2:
            calls.append(partial(axpy, l2, self.W, self.dW))
        calls.append(partial(self._bias_grad, dz) if self.shared_bias
                     else bind_gemv(dz.T, self._ones(dz.shape[0]), self.db))
        return self._bind_dx(dz, need_dx, calls)

    def bind_backward_step(self, dz, need_dx=True, decay=1.0):
        """Bound :meth:`backward_step` (with ``update_bias=True``)."""
        calls, dx = self._bind_dx(dz, need_dx, [])
        calls.append(bind_gemm(self._x.T, dz, self.W, alpha=-1.0, beta=decay))
        if self.shared_bias:
            calls.append(partial(self._shared_bias_step, dz))
        else:
            calls.append(bind_gemv(dz.T, self._ones(dz.shape[0]), self.b, alpha=-1.0, beta=1.0))
        return calls, dx

    def _bind_dx(self, dz, need_dx, calls):
        if not need_dx:
            return calls, None
        dx = self._buffer("dx", (dz.shape[0], self.fan_in), self.dtype)
        return calls + [bind_gemm(dz, self.W.T, dx)], dx

    def _shared_bias_step(self, dz):
        self._bias_grad(dz)
        self.b -= self.db

    def _bias_grad(self, dz):
        if self.shared_bias:
            self.db[0] = dz.sum(dtype=self.dtype)
        else:  # column sums of dz as a BLAS product with ones (faster than np.sum(axis=0))
            gemv(dz.T, self._ones(dz.shape[0]), self.db)

    def _ones(self, n):
        ones = self._buffers.get(("ones", n))
        if ones is None:
            ones = self._buffer("ones", n, self.dtype)
            ones.fill(1)
        return ones

    def _dx(self, dz):
        dx = self._buffer("dx", (dz.shape[0], self.fan_in), self.dtype)
        return gemm(dz, self.W.T, dx)  # (n, fan_out) @ (fan_out, fan_in)

    def __repr__(self) -> str:
        return f"Dense({self.fan_in}, {self.fan_out})"


class ActivationLayer(Layer):
    """Applies an activation in place on the preceding Dense layer's output buffer."""

    def __init__(self, activation: Activation, dtype=np.float32):
        super().__init__()
        self.activation = activation
        self.dtype = np.dtype(dtype)
        self._a: np.ndarray | None = None

    def forward(self, x, training=False):
        a = self.activation.forward(x, out=x)  # x is a buffer owned by the Dense layer before
        if training:
            self._a = a
        return a

    def backward(self, dy, need_dx=True):
        scratch = self._buffer("scratch", dy.shape, self.dtype)
        return self.activation.backward(self._a, dy, out=dy, scratch=scratch)

    def _bindable(self) -> bool:
        # mlplab's activations return ``out`` itself when given one; a user's might not
        return type(self.activation).__module__ == "mlplab.activations"

    def bind_forward(self, x):
        if not self._bindable():
            return None
        self._a = x
        return [partial(self.activation.forward, x, out=x)], x

    def bind_backward(self, dy, need_dx=True):
        if not self._bindable():
            return None
        scratch = self._buffer("scratch", dy.shape, self.dtype)
        return [partial(self.activation.backward, self._a, dy, out=dy, scratch=scratch)], dy

    def __repr__(self) -> str:
        return f"Activation({self.activation.name})"


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the
    survivors by ``1 / (1 - rate)``; identity at inference."""

    def __init__(self, rate: float, rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        self.rate = float(rate)
        self.rng = rng
        self.dtype = np.dtype(dtype)
        self._mask: np.ndarray | None = None

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        mask = self._buffer("mask", x.shape, self.dtype)
        self.rng.random(out=mask, dtype=self.dtype)
        np.less(mask, 1.0 - self.rate, out=mask)  # 1.0 keep, 0.0 drop
        mask *= 1.0 / (1.0 - self.rate)
        self._mask = mask
        out = self._buffer("y", x.shape, self.dtype)  # x stays intact for the activation's backward
        return np.multiply(x, mask, out=out)

    def backward(self, dy, need_dx=True):
        if self._mask is not None:
            dy *= self._mask
        return dy

    def bind_forward(self, x):
        if self.rate == 0.0:
            self._mask = None
            return [], x
        mask = self._mask = self._buffer("mask", x.shape, self.dtype)
        out = self._buffer("y", x.shape, self.dtype)
        return [partial(self.rng.random, out=mask, dtype=self.dtype),
                partial(np.less, mask, 1.0 - self.rate, out=mask),
                partial(np.multiply, mask, 1.0 / (1.0 - self.rate), out=mask),
                partial(np.multiply, x, mask, out=out)], out

    def bind_backward(self, dy, need_dx=True):
        if self._mask is None:
            return [], dy
        return [partial(np.multiply, dy, self._mask, out=dy)], dy

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"
