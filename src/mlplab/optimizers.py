"""Optimizers own their state, created from the parameter list, and update parameters in place.

Each subclass implements only ``_update(i, p, g)``; its rule is written in its docstring as
code. Gradients are scratch space: an update may overwrite them (they are recomputed on every
step), which keeps the update free of temporaries.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from mlplab.blas import axpy
from mlplab.errors import ConfigError
from mlplab.registry import Registry

OPTIMIZERS: Registry[type["Optimizer"]] = Registry("optimizer")


def _positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")
    return value


class Optimizer:
    name = "optimizer"
    #: names of per-parameter state arrays (each shaped like its parameter)
    slots: tuple[str, ...] = ()
    #: slots that are only scratch space: not saved, recreated on load
    scratch_slots: tuple[str, ...] = ()

    def __init__(self, params: Sequence[np.ndarray], lr: float):
        self.params = list(params)
        self.lr = _positive("learning rate", lr)
        self.t = 0  # number of steps taken
        self.state: dict[str, list[np.ndarray]] = {
            slot: [np.zeros_like(p) for p in self.params] for slot in self.slots
        }

    def prescale(self) -> float | None:
        """The learning rate when this optimizer's step is the plain ``p -= lr * g``: the caller
        may then fold it into the output gradient and apply the step itself, fused into
        backpropagation (:meth:`mlplab.network.MLP.backward_step`), and call :meth:`count_step`.
        ``None``: this optimizer needs the true gradients and :meth:`step`."""
        return None

    def count_step(self) -> None:
        """Record a step the caller applied itself (see :meth:`prescale`)."""
        self.t += 1

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Apply one update with ``grads`` (same order as the parameters)."""
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self._update(i, p, g)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    # -- persistence -----------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self.hyperparameters()}

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able scalars, named arrays) that restore this optimizer exactly."""
        arrays = {f"{slot}/{i}": a for slot, lst in self.state.items() if slot not in self.scratch_slots
                  for i, a in enumerate(lst)}
        return {"config": self.config(), "t": self.t}, arrays

    #: older slot names readable on load: ``{old: (new, beta)}``, the old slot held the average
    #: ``(1 - beta) * new`` of the new plain decayed sum (``beta`` names the decay hyperparameter)
    legacy_slots: dict[str, tuple[str, str]] = {}

    def load_state_dict(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.t = int(meta["t"])
        legacy = {new: (old, 1.0 / (1.0 - getattr(self, beta))) for old, (new, beta) in self.legacy_slots.items()}
        for slot, lst in self.state.items():
            if slot in self.scratch_slots:
                continue
            for i, a in enumerate(lst):
                key, factor = f"{slot}/{i}", None
                if key not in arrays and slot in legacy:  # a file written before the rename
                    old, factor = legacy[slot]
                    key = f"{old}/{i}"
                if key not in arrays:
                    raise ConfigError(f"optimizer state {slot}/{i} is missing")
                src = arrays[key]
                if src.shape != a.shape:
                    raise ConfigError(f"optimizer state {slot}/{i} has shape {src.shape}, expected {a.shape}")
                a[...] = src if factor is None else np.asarray(src) * factor


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's convention for momentum)::

        g = g + weight_decay * p
        if momentum:  v = momentum * v + g
                      g = g + momentum * v if nesterov else v
        p -= lr * g
    """

    name = "sgd"

    def __init__(self, params, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ConfigError(f"momentum must be < 1, got {momentum}")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0")
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
        self.slots = ("velocity",) if self.momentum else ()
        super().__init__(params, lr)
        self._scratch = [np.empty_like(p) for p in self.params] if (self.weight_decay or self.nesterov) else None

    def prescale(self) -> float | None:
        # plain SGD is linear in the gradient: multiplying the loss gradient (n x k, tiny) by lr
        # makes backpropagation deliver lr * g, and the step fuses into the weight gradient's
        # matrix product
        return None if (self.momentum or self.weight_decay) else self.lr

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, i, p, g):
        if self.weight_decay:
            np.multiply(p, self.weight_decay, out=self._scratch[i])
            g += self._scratch[i]
        if self.momentum:
            v = self.state["velocity"][i]
            v *= self.momentum
            v += g
            if self.nesterov:
                np.multiply(v, self.momentum, out=self._scratch[i])
                g += self._scratch[i]  # g + momentum * v
            else:
                g = v
        axpy(-self.lr, g, p)  # p -= lr * g, one BLAS pass


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """RMSprop (PyTorch's defaults and formula; eps outside the square root)::

        s = alpha * s + (1 - alpha) * g**2
        p -= lr * g / (sqrt(s) + eps)

    Computed in 7 elementwise passes instead of 9 by keeping ``S = s / (1 - alpha)``, the plain
    decayed sum ``S = alpha * S + g**2`` (state slot ``square_sum``), using
    ``p -= (lr / r) * g / (sqrt(S) + eps / r)`` with ``r = sqrt(1 - alpha)``, and one BLAS
    ``axpy`` for the last multiply-and-subtract: the same update up to float rounding.
    """

    name = "rmsprop"
    slots = ("square_sum", "denom")
    scratch_slots = ("denom",)
    legacy_slots = {"square_avg": ("square_sum", "alpha")}

    def __init__(self, params, lr=0.001, alpha=0.99, eps=1e-8):
        self.alpha = float(alpha)
        if not 0 <= self.alpha < 1:
            raise ConfigError(f"rmsprop alpha must be in [0, 1), got {alpha}")
        self.eps = _positive("eps", eps)
        super().__init__(params, lr)

    def hyperparameters(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps}

    def _update(self, i, p, g):
        S, d = self.state["square_sum"][i], self.state["denom"][i]  # denom is scratch
        r = math.sqrt(1.0 - self.alpha)
        S *= self.alpha
        np.multiply(g, g, out=d)
        S += d
        np.sqrt(S, out=d)
        d += self.eps / r
        g /= d
        axpy(-self.lr / r, g, p)  # p -= (lr / r) * g, one BLAS pass


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba; PyTorch's arrangement of the bias corrections)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        p -= (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Computed in 9 elementwise passes instead of 13 (the last multiply-and-subtract is one BLAS
    ``axpy``) by keeping the plain decayed sums
    ``M = m / (1 - beta1)`` and ``V = v / (1 - beta2)`` (``M = beta1 * M + g``,
    ``V = beta2 * V + g**2``; state slots ``m_sum``, ``v_sum``) and folding every constant into
    two scalars: ``p -= c * M / (sqrt(V) + eps / r)`` with ``r = sqrt((1 - beta2) / (1 - beta2**t))``
    and ``c = lr * (1 - beta1) / (1 - beta1**t) / r``: the same update up to float rounding.
    """

    name = "adam"
    slots = ("m_sum", "v_sum", "denom")
    scratch_slots = ("denom",)
    legacy_slots = {"m": ("m_sum", "beta1"), "v": ("v_sum", "beta2")}

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.beta1, self.beta2 = float(beta1), float(beta2)
        for name, b in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0 <= b < 1:
                raise ConfigError(f"adam {name} must be in [0, 1), got {b}")
        self.eps = _positive("eps", eps)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
        super().__init__(params, lr)

    def hyperparameters(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _update(self, i, p, g):
        M, V, d = self.state["m_sum"][i], self.state["v_sum"][i], self.state["denom"][i]
        if self.weight_decay:
            np.multiply(p, self.weight_decay, out=d)
            g += d
        M *= self.beta1
        M += g
        V *= self.beta2
        np.multiply(g, g, out=d)
        V += d
        bc1 = 1 - self.beta1 ** self.t
        bc2 = 1 - self.beta2 ** self.t
        r = math.sqrt((1 - self.beta2) / bc2)
        np.sqrt(V, out=d)
        d += self.eps / r
        np.divide(M, d, out=g)
        axpy(-self.lr * (1 - self.beta1) / bc1 / r, g, p)  # p -= c * M / d, one BLAS pass


def get_optimizer(spec: str | dict, params: Sequence[np.ndarray], **overrides: Any) -> Optimizer:
    """An optimizer from a name or ``{"name": ..., **hyperparameters}``."""
    cfg = dict(spec) if isinstance(spec, dict) else {"name": spec}
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cls = OPTIMIZERS.get(cfg.pop("name"))
    try:
        return cls(params, **cfg)
    except TypeError as exc:
        raise ConfigError(f"optimizer {cls.name!r}: {exc}") from None
