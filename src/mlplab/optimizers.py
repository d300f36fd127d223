"""Optimizers own their state, created from the parameter list, and update parameters in place.

Each subclass implements only ``_update(i, p, g)``; its rule is written in its docstring as
code. Gradients are scratch space: an update may overwrite them (they are recomputed on every
step), which keeps the update free of temporaries.

Decayed sums ``S = beta * S + x`` (momentum's velocity, RMSprop's and Adam's moments) are kept
in scaled form: the state array holds ``S / scale`` for one scalar ``scale`` per slot that is
multiplied by ``beta`` at every step, so each update of a sum is one BLAS ``axpy``
(``A += x / scale``) instead of two elementwise passes (``S *= beta; S += x``). When ``scale``
falls below ``2**-16`` it is folded back into the arrays (one pass every few hundred steps for
``beta = 0.9``). The scales are saved with the state, so training resumes bit for bit.
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
    #: slots that are decayed sums ``S = beta * S + x``, kept as ``S / scale``: ``{slot: beta's name}``
    decayed_slots: dict[str, str] = {}
    #: a slot's scale is folded back into its arrays when it falls below this
    rescale_below = 2.0 ** -16

    def __init__(self, params: Sequence[np.ndarray], lr: float):
        self.params = list(params)
        self.lr = _positive("learning rate", lr)
        self.t = 0  # number of steps taken
        self.state: dict[str, list[np.ndarray]] = {
            slot: [np.zeros_like(p) for p in self.params] for slot in self.slots
        }
        #: the decayed sum of slot ``k`` for parameter ``i`` is ``scales[k] * state[k][i]``
        self.scales: dict[str, float] = {slot: 1.0 for slot in self.decayed_slots}
        self._gain: dict[str, float] = {}

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
        self._advance_scales()
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self._update(i, p, g)

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def _advance_scales(self) -> None:
        """Multiply each decayed slot's scale by its beta, folding it into the arrays first when
        it would fall below :attr:`rescale_below`."""
        for slot, beta_name in self.decayed_slots.items():
            beta = getattr(self, beta_name)
            scale = self.scales[slot] * beta
            if scale < self.rescale_below:
                if beta:  # the arrays become the plain sums, and this step scales them by beta
                    for a in self.state[slot]:
                        a *= self.scales[slot]
                    scale = beta
                else:  # beta = 0: the sum is just the new term
                    scale = 1.0
            self.scales[slot] = scale
            self._gain[slot] = 1.0 / scale if beta else 0.0

    def _accumulate(self, slot: str, i: int, x: np.ndarray) -> np.ndarray:
        """``S = beta * S + x`` for parameter ``i``'s decayed sum ``slot``: one BLAS ``axpy`` on
        its scaled array (a copy when beta is 0). Returns the array, ``S / scales[slot]``."""
        a = self.state[slot][i]
        gain = self._gain[slot]
        if gain:
            axpy(gain, x, a)
        else:
            np.copyto(a, x)
        return a

    # -- persistence -----------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self.hyperparameters()}

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able scalars, named arrays) that restore this optimizer exactly."""
        arrays = {f"{slot}/{i}": a for slot, lst in self.state.items() if slot not in self.scratch_slots
                  for i, a in enumerate(lst)}
        meta = {"config": self.config(), "t": self.t}
        if self.scales:
            meta["scales"] = dict(self.scales)
        return meta, arrays

    #: older slot names readable on load, ``{old: (new, beta)}``. Files written before the sums
    #: were scaled have no ``scales`` (scale 1) and hold the plain decayed sum under ``old``
    #: (``beta`` None) or, older still, its average ``(1 - beta) * sum`` (``beta`` names the decay
    #: hyperparameter). The slots were renamed each time so that an older mlplab refuses to resume
    #: from a newer file instead of misreading it.
    legacy_slots: dict[str, tuple[str, str | None]] = {}

    def load_state_dict(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.t = int(meta["t"])
        scales = meta.get("scales") or {}  # files written before scaled sums hold the sums themselves
        for slot in self.scales:
            scale = float(scales.get(slot, 1.0))
            if not (math.isfinite(scale) and scale > 0):
                raise ConfigError(f"optimizer state scale of {slot} must be positive and finite, got {scale}")
            self.scales[slot] = scale
        legacy: dict[str, list[tuple[str, float | None]]] = {}
        for old, (new, beta) in self.legacy_slots.items():
            legacy.setdefault(new, []).append((old, None if beta is None else 1.0 / (1.0 - getattr(self, beta))))
        for slot, lst in self.state.items():
            if slot in self.scratch_slots:
                continue
            for i, a in enumerate(lst):
                key, factor = f"{slot}/{i}", None
                for old, old_factor in legacy.get(slot, []) if key not in arrays else []:
                    if f"{old}/{i}" in arrays:  # a file written before a rename
                        key, factor = f"{old}/{i}", old_factor
                        break
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

    Every line is one BLAS ``axpy``: the velocity is a scaled decayed sum (slot
    ``velocity_scaled`` holds ``v / scale``), so ``p -= lr * v`` is
    ``p -= (lr * scale) * velocity_scaled``.
    """

    name = "sgd"
    legacy_slots = {"velocity": ("velocity_scaled", None)}

    def __init__(self, params, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ConfigError(f"momentum must be < 1, got {momentum}")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0")
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
        self.slots = ("velocity_scaled",) if self.momentum else ()
        self.decayed_slots = {"velocity_scaled": "momentum"} if self.momentum else {}
        super().__init__(params, lr)

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
            axpy(self.weight_decay, p, g)  # g += weight_decay * p
        if not self.momentum:
            axpy(-self.lr, g, p)  # p -= lr * g
            return
        V = self._accumulate("velocity_scaled", i, g)  # v = scale * V
        scale = self.scales["velocity_scaled"]
        if self.nesterov:
            axpy(self.momentum * scale, V, g)  # g + momentum * v
            axpy(-self.lr, g, p)
        else:
            axpy(-self.lr * scale, V, p)  # p -= lr * v


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """RMSprop (PyTorch's defaults and formula; eps outside the square root)::

        s = alpha * s + (1 - alpha) * g**2
        p -= lr * g / (sqrt(s) + eps)

    Computed in 6 passes instead of 9, two of them BLAS ``axpy``: the plain decayed sum
    ``S = s / (1 - alpha)`` (``S = alpha * S + g**2``) is kept scaled (slot ``square_scaled`` holds
    ``S / scale``, see the module docstring), and with ``r = sqrt((1 - alpha) * scale)`` the
    step is ``p -= (lr / r) * g / (sqrt(S / scale) + eps / r)``: the same update up to float
    rounding.
    """

    name = "rmsprop"
    slots = ("square_scaled", "denom")
    scratch_slots = ("denom",)
    decayed_slots = {"square_scaled": "alpha"}
    legacy_slots = {"square_sum": ("square_scaled", None), "square_avg": ("square_scaled", "alpha")}

    def __init__(self, params, lr=0.001, alpha=0.99, eps=1e-8):
        self.alpha = float(alpha)
        if not 0 <= self.alpha < 1:
            raise ConfigError(f"rmsprop alpha must be in [0, 1), got {alpha}")
        self.eps = _positive("eps", eps)
        super().__init__(params, lr)

    def hyperparameters(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps}

    def _update(self, i, p, g):
        d = self.state["denom"][i]  # scratch
        np.square(g, out=d)
        S = self._accumulate("square_scaled", i, d)
        r = math.sqrt((1.0 - self.alpha) * self.scales["square_scaled"])
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

    Computed in 7 passes instead of 13, three of them BLAS ``axpy``: the plain decayed sums
    ``M = m / (1 - beta1)`` and ``V = v / (1 - beta2)`` (``M = beta1 * M + g``,
    ``V = beta2 * V + g**2``) are kept scaled (slots ``m_scaled`` and ``v_scaled`` hold ``M / sM`` and
    ``V / sV``, see the module docstring), and every constant folds into two scalars:
    ``p -= c * (M / sM) / (sqrt(V / sV) + eps / r)`` with
    ``r = sqrt((1 - beta2) * sV / (1 - beta2**t))`` and ``c = lr * (1 - beta1) * sM / (1 - beta1**t) / r``:
    the same update up to float rounding.
    """

    name = "adam"
    slots = ("m_scaled", "v_scaled", "denom")
    scratch_slots = ("denom",)
    decayed_slots = {"m_scaled": "beta1", "v_scaled": "beta2"}
    legacy_slots = {"m_sum": ("m_scaled", None), "v_sum": ("v_scaled", None),
                    "m": ("m_scaled", "beta1"), "v": ("v_scaled", "beta2")}

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
        d = self.state["denom"][i]  # scratch
        if self.weight_decay:
            axpy(self.weight_decay, p, g)  # g += weight_decay * p
        M = self._accumulate("m_scaled", i, g)
        np.square(g, out=d)
        V = self._accumulate("v_scaled", i, d)
        r = math.sqrt((1 - self.beta2) * self.scales["v_scaled"] / (1 - self.beta2 ** self.t))
        np.sqrt(V, out=d)
        d += self.eps / r
        np.divide(M, d, out=g)
        c = self.lr * (1 - self.beta1) * self.scales["m_scaled"] / (1 - self.beta1 ** self.t) / r
        axpy(-c, g, p)  # p -= c * M / d, one BLAS pass


def get_optimizer(spec: str | dict, params: Sequence[np.ndarray], **overrides: Any) -> Optimizer:
    """An optimizer from a name or ``{"name": ..., **hyperparameters}``."""
    cfg = dict(spec) if isinstance(spec, dict) else {"name": spec}
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cls = OPTIMIZERS.get(cfg.pop("name"))
    try:
        return cls(params, **cfg)
    except TypeError as exc:
        raise ConfigError(f"optimizer {cls.name!r}: {exc}") from None
