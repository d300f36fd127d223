"""The multilayer perceptron: layers built from a list of sizes, a loss, and their parameters."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from mlplab.activations import ACTIVATIONS, get_activation, softmax
from mlplab.blas import dot
from mlplab.errors import ConfigError
from mlplab.initializers import get_initializer
from mlplab.layers import ActivationLayer, Dense, Dropout, Layer
from mlplab.losses import check_pairing, get_loss

# independent random streams derived from one seed (SeedSequence spawn keys)
STREAM_INIT, STREAM_DROPOUT, STREAM_SHUFFLE, STREAM_SPLIT = 0, 1, 2, 3
# rows per forward pass when predicting: the activations of 1,024 rows stay in cache, which
# measured 5-15% faster than 8,192 rows on 784-500-500-10 at one and two threads
PREDICT_BATCH = 1024


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """The generator of one purpose (init, dropout, shuffle, split) derived from ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(stream,)))


def _dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def finite_arrays(arrays: Iterable[np.ndarray]) -> bool:
    """Whether the squared norm of every array (the sum of its squares, in its own dtype) is
    finite: :meth:`MLP.finite_weights`'s test, for weights trained elsewhere (PyTorch's,
    scikit-learn's reference models), so that they count as diverged ("non-finite or too
    large") exactly when mlplab's own would."""
    return all(math.isfinite(dot(p, p)) for p in arrays)


class MLP:
    """A feed-forward network ``Dense -> act -> [Dropout] -> ... -> Dense -> [output act]``.

    Parameters
    ----------
    sizes : list of int
        Layer widths from input to output, e.g. ``[784, 500, 500, 10]``. Depth is
        ``len(sizes) - 1`` affine layers; nothing is written per layer.
    hidden_activation, output_activation : str or dict
        Names from :data:`mlplab.activations.ACTIVATIONS` (``{"name": "leaky_relu", "slope": 0.1}``).
    loss : str or dict
        ``mse``, ``cross_entropy`` (needs softmax output) or ``binary_cross_entropy`` (sigmoid).
    init : str, init_params : dict
        Initialiser of the weights (biases start at 0); e.g. ``"normal", {"std": 0.1}``.
    dropout : float
        Dropout rate after every hidden activation (0 disables).
    l2 : float
        L2 penalty ``0.5 * l2 * sum ||W||^2`` (weights only): training descends the batch-mean
        loss plus it, and :meth:`loss_and_gradients` returns that sum; the losses a
        :class:`~mlplab.training.Trainer` records and monitors are without it
        (:class:`~mlplab.training.History`).
    dtype : float32 (default, fast) or float64.
    seed : int
        Seeds initialisation and dropout through independent streams.
    shared_bias : bool
        One scalar bias per layer (report 2's quirk), instead of one per unit.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        hidden_activation: str | dict = "sigmoid",
        output_activation: str | dict = "sigmoid",
        loss: str | dict = "mse",
        init: str = "normal",
        init_params: dict | None = None,
        dropout: float = 0.0,
        l2: float = 0.0,
        dtype: Any = "float32",
        seed: int = 0,
        shared_bias: bool = False,
    ):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ConfigError(f"sizes needs at least an input and an output size, got {sizes}")
        if any(s < 1 for s in sizes):
            raise ConfigError(f"every layer size must be at least 1, got {sizes}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        if not float(l2) >= 0.0:
            raise ConfigError(f"l2 must be >= 0, got {l2}")
        self.sizes = sizes
        self.dtype = _dtype(dtype)
        # copies: config(), describe() and save_model read the specs again later, and a caller's
        # dict reused or edited for the next network must not change what this one says it is
        self.hidden_activation = copy.deepcopy(hidden_activation)
        self.output_activation = copy.deepcopy(output_activation)
        self.init, self.init_params = init, dict(init_params or {})
        self.dropout, self.l2, self.seed = float(dropout), float(l2), int(seed)
        self.shared_bias = bool(shared_bias)

        self.loss = get_loss(loss, sizes[-1], self.dtype)
        out_name = get_activation(self.output_activation).name
        check_pairing(out_name, self.loss)
        self.dropout_rng = rng_for(self.seed, STREAM_DROPOUT)

        layers: list[Layer] = []
        n_affine = len(sizes) - 1
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Dense(fan_in, fan_out, self.dtype, shared_bias=self.shared_bias))
            last = i == n_affine - 1
            if not last:
                layers.append(ActivationLayer(get_activation(self.hidden_activation), self.dtype))
                if self.dropout > 0:
                    layers.append(Dropout(self.dropout, self.dropout_rng, self.dtype))
            elif self.loss.fused_activation is None:
                layers.append(ActivationLayer(get_activation(self.output_activation), self.dtype))
        self.layers = layers
        self.dense_layers = [layer for layer in layers if isinstance(layer, Dense)]
        self.initialize(self.seed)

    # -- parameters ------------------------------------------------------------------------
    def initialize(self, seed: int | None = None) -> None:
        """(Re)draw all weights from the init stream of ``seed``; zero all biases."""
        rng = rng_for(self.seed if seed is None else seed, STREAM_INIT)
        draw = get_initializer(self.init, **self.init_params)
        for layer in self.dense_layers:
            layer.W[...] = draw(rng, layer.fan_in, layer.fan_out)  # drawn in float64, then cast
            layer.b[...] = 0

    def parameters(self) -> list[np.ndarray]:
        """Every parameter array, in order W0, b0, W1, b1, ... (updated in place by optimizers)."""
        return [p for layer in self.dense_layers for p in layer.params]

    def gradients(self) -> list[np.ndarray]:
        return [g for layer in self.dense_layers for g in layer.grads]

    def get_weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.parameters()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy ``weights`` (order of :meth:`parameters`) into the parameter arrays. All or
        nothing: every array is checked before the first is written, so a bad one leaves the
        network as it was."""
        params = self.parameters()
        if len(weights) != len(params):
            raise ConfigError(f"expected {len(params)} arrays, got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for p, w in zip(params, arrays):
            if w.shape != p.shape:
                raise ConfigError(f"weight shape {w.shape} does not match parameter shape {p.shape}")
            if w.dtype.kind not in "biuf":
                raise ConfigError(f"weights must be real numbers, got an array of dtype {w.dtype}")
        for p, w in zip(params, arrays):
            p[...] = w

    @property
    def n_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    # -- computation -----------------------------------------------------------------------
    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """The graph's output: logits for fused losses, else the output activation.

        With ``training=True`` the result is the network's own reusable buffer (training
        allocates nothing per minibatch): the next training forward overwrites it, so copy it
        to keep it. ``training=False`` returns a new array."""
        out = X
        for layer in self.layers:
            out = layer.forward(out, training)
        return out

    def backward(self, grad_out: np.ndarray, scale: float = 1.0, overwrite_grad: bool = False) -> None:
        """Backpropagate ``dL/d(output)``; fills every layer's gradients.

        ``scale`` states that ``grad_out`` was multiplied by it (backpropagation is linear, so
        every gradient then carries the factor); the L2 term is scaled to match.

        ``grad_out`` is left as it is. ``overwrite_grad=True`` lets backpropagation use it as
        scratch (an output activation's backward works in place), sparing a copy: for a
        training loop's own gradient buffer, which it refills before every step.
        """
        g = grad_out if overwrite_grad else self._grad_in(grad_out)
        l2 = self.l2 * scale  # d/dW of 0.5 * l2 * ||W||^2, accumulated by the dW product itself
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if l2 and isinstance(layer, Dense):
                g = layer.backward(g, need_dx=i > 0, l2=l2)
            else:
                g = layer.backward(g, need_dx=i > 0)

    def backward_step(self, grad_out: np.ndarray, lr: float, overwrite_grad: bool = False) -> None:
        """Backpropagate ``lr * dL/d(output)`` (already multiplied) and apply the plain SGD step
        ``W -= lr * (dW + l2 * W)``, ``b -= lr * db`` layer by layer, fused into the weight
        gradient's matrix product (:meth:`Dense.backward_step`). Gradients are not kept.
        ``grad_out`` and ``overwrite_grad`` as in :meth:`backward`."""
        decay = 1.0 - self.l2 * lr
        g = grad_out if overwrite_grad else self._grad_in(grad_out)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if isinstance(layer, Dense):
                g = layer.backward_step(g, need_dx=i > 0, decay=decay)
            else:
                g = layer.backward(g, need_dx=i > 0)

    def _grad_in(self, grad_out: np.ndarray) -> np.ndarray:
        """``grad_out``, or a copy when backpropagation would write into it: only a Dense
        output layer leaves its input gradient alone (an activation's backward is in place).
        The copy goes into a buffer of the output layer, so a loop calling this allocates
        nothing per step."""
        last = self.layers[-1]
        if isinstance(last, Dense):
            return grad_out
        grad_out = np.asarray(grad_out)
        buf = last._buffer(f"grad_in/{grad_out.dtype.str}", grad_out.shape, grad_out.dtype)
        np.copyto(buf, grad_out)
        return buf

    def bind_step(self, xb: np.ndarray, lr: float | None = None) -> "BoundStep | None":
        """The training step on the minibatch buffer ``xb`` as bound calls (see
        :meth:`mlplab.layers.Layer.bind_forward`): running ``forward`` equals
        ``forward(xb, training=True)``; after the caller wrote ``dL/d(output)`` into ``grad``,
        running ``backward`` equals ``backward(grad, overwrite_grad=True)``, or with ``lr``
        given (the gradient then already multiplied by it) ``backward_step(grad, lr,
        overwrite_grad=True)``. Same calls, same bits, without the per-call checks and
        lookups: 15-25% of a 784-50-10 step
        (``benchmarks/bench_bound_steps.py``). ``None`` if a layer cannot be bound. Bind again
        after replacing a parameter array or a layer, or changing ``l2`` or the dropout rate."""
        forward: list[Callable[[], object]] = []
        out = xb
        for layer in self.layers:
            bound = layer.bind_forward(out)
            if bound is None:
                return None
            calls, out = bound
            forward += calls
        grad = self.layers[-1]._buffer("dout", out.shape, self.dtype)
        backward: list[Callable[[], object]] = []
        g: np.ndarray | None = grad
        decay = None if lr is None else 1.0 - self.l2 * lr
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if isinstance(layer, Dense):
                bound = (layer.bind_backward(g, need_dx=i > 0, l2=self.l2) if decay is None
                         else layer.bind_backward_step(g, need_dx=i > 0, decay=decay))
            else:
                bound = layer.bind_backward(g, need_dx=i > 0)
            if bound is None:
                return None
            calls, g = bound
            backward += calls
        return BoundStep(xb, out, grad, tuple(forward), tuple(backward))

    def penalty(self) -> float:
        if not self.l2:
            return 0.0
        return 0.5 * self.l2 * float(sum(dot(layer.W, layer.W) for layer in self.dense_layers))

    def finite_weights(self) -> bool:
        """Whether every parameter's squared norm is finite: false for a NaN or infinite weight,
        and for weights so large that the sum of their squares overflows (one of 2e19 does in
        float32), with which a forward pass on ordinary inputs overflows too. One dot product
        per array, no temporary (but the copy of a strided view): cheap enough once per epoch."""
        return finite_arrays(self.parameters())

    def loss_and_gradients(self, X: np.ndarray, y: np.ndarray) -> float:
        """One forward/backward pass in training mode; returns the loss (with L2 penalty)."""
        y = self._as_labels(y, np.shape(X)[0])
        out = self.forward(X, training=True)
        grad = np.empty_like(out)
        value = self.loss.value_and_grad(out, y, grad)
        self.backward(grad, overwrite_grad=True)
        return value + self.penalty()

    def _as_input(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ConfigError(
                f"input has shape {X.shape}; this network expects (n_samples, {self.sizes[0]})"
            )
        return np.ascontiguousarray(X, dtype=self.dtype)

    def _as_labels(self, y: np.ndarray, n_rows: int, what: str = "") -> np.ndarray:
        """``y`` as contiguous int64 class indices, one per input row, refused (ConfigError naming
        ``what`` labels) unless each is a whole number in ``[0, max(n_outputs, 2))``. The losses
        index with labels unchecked, for speed: a label of -1 would read the last class (or,
        bound, the previous row's), so every public way in checks them here, once per call."""
        name = f"{what} labels" if what else "labels"
        y_in = np.asarray(y)
        if y_in.dtype.kind not in "iub":  # labels are class indices: 1.5 must not become 1
            if y_in.dtype.kind != "f" or not np.all(np.isfinite(y_in)) or not np.all(y_in == np.round(y_in)):
                raise ConfigError(f"{name} must be integer class indices, got dtype {y_in.dtype}"
                                  + (" with fractional or non-finite values" if y_in.dtype.kind == "f" else ""))
        y = np.ascontiguousarray(y_in, dtype=np.int64)
        if y.shape != (n_rows,):
            raise ConfigError(f"{name} have shape {y.shape}, expected ({n_rows},)")
        n_out = self.sizes[-1]
        if y.size and (y.min() < 0 or (n_out > 1 and y.max() >= n_out) or (n_out == 1 and y.max() > 1)):
            raise ConfigError(f"{name} must lie in [0, {max(n_out, 2)}), got range [{y.min()}, {y.max()}]")
        return y

    def decision_function(self, X: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Raw graph outputs (logits for fused losses) for every row of ``X``, batched."""
        X = self._as_input(X)
        if X.shape[0] <= batch_size:
            return self.forward(X, training=False)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        for start in range(0, X.shape[0], batch_size):
            out[start:start + batch_size] = self.forward(X[start:start + batch_size], training=False)
        return out

    def predict_scores(self, X: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Per-class scores: probabilities for fused losses, output activations otherwise."""
        return self.loss.link(self.decision_function(X, batch_size))

    def predict_proba(self, X: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` whose rows sum to 1.

        A single output unit gives two columns ``[1 - p, p]``. Non-normalised scores of an MSE
        network are made probabilities keeping each row's order, so ``argmax`` is :meth:`predict`:
        non-negative ones (sigmoid, ReLU outputs) are divided by their row sum; scores that can be
        negative (identity, tanh, leaky ReLU outputs) go through a softmax.
        """
        s = self.predict_scores(X, batch_size).astype(np.float64)
        if s.shape[1] == 1:
            p = np.clip(s[:, 0], 0.0, 1.0)
            return np.stack([1.0 - p, p], axis=1)
        out = get_activation(self.output_activation).name
        if self.loss.fused_activation == "softmax" or out == "softmax":
            return s
        if out in ("sigmoid", "relu"):
            s = np.clip(s, 0.0, None) + 1e-12
            return s / s.sum(axis=1, keepdims=True)
        return softmax(s)

    def predict(self, X: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Predicted class index per row."""
        return self.labels_from_output(self.decision_function(X, batch_size))

    def labels_from_output(self, out: np.ndarray) -> np.ndarray:
        """Class indices from graph outputs (argmax, or a 0.5 threshold for one sigmoid unit)."""
        if out.shape[1] == 1:
            threshold = 0.0 if self.loss.fused_activation == "sigmoid" else 0.5
            return (out[:, 0] > threshold).astype(np.int64)
        return out.argmax(axis=1)

    def release(self) -> None:
        for layer in self.layers:
            layer.release()

    # -- description -----------------------------------------------------------------------
    def config(self) -> dict:
        """Everything needed to rebuild this network (not its weights); JSON-able."""
        return {
            "sizes": list(self.sizes),
            "hidden_activation": _act_cfg(self.hidden_activation),
            "output_activation": _act_cfg(self.output_activation),
            "loss": self.loss.config() if self.loss.denominator else self.loss.name,
            "init": self.init,
            "init_params": dict(self.init_params),
            "dropout": self.dropout,
            "l2": self.l2,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "shared_bias": self.shared_bias,
        }

    @classmethod
    def from_config(cls, config: dict) -> "MLP":
        try:
            return cls(**config)
        except TypeError as exc:
            raise ConfigError(f"bad network config: {exc}") from None

    def describe(self) -> str:
        """Short architecture string, e.g. ``784-500-500-10 sigmoid/sigmoid mse``."""
        hid = get_activation(self.hidden_activation).name
        out = get_activation(self.output_activation).name
        return f"{'-'.join(map(str, self.sizes))} {hid}/{out} {self.loss.name}"

    def __repr__(self) -> str:
        return f"MLP({self.describe()}, dtype={self.dtype.name})"


@dataclass(frozen=True)
class BoundStep:
    """A training step bound to fixed buffers (:meth:`MLP.bind_step`)."""

    xb: np.ndarray  #: the minibatch input buffer: write the rows here before ``forward``
    out: np.ndarray  #: the graph's output after ``forward``
    grad: np.ndarray  #: write ``dL/d(out)`` here before ``backward``
    forward: tuple[Callable[[], object], ...]
    backward: tuple[Callable[[], object], ...]


def _act_cfg(spec: str | dict) -> str | dict:
    act = get_activation(spec)
    cfg = act.config()
    return cfg if len(cfg) > 1 else cfg["name"]


def activation_names() -> list[str]:
    return ACTIVATIONS.names()
