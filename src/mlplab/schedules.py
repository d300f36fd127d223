"""Learning-rate schedules, applied once per epoch: ``lr = schedule(epoch, base_lr)``.

``epoch`` counts from 0. :class:`ReduceOnPlateau` also watches a metric through ``observe``.
"""

from __future__ import annotations

import math
from typing import Any

from mlplab.errors import ConfigError
from mlplab.registry import Registry, check_settings

SCHEDULES: Registry[type["Schedule"]] = Registry("schedule")


class Schedule:
    name = "schedule"
    #: the schedule needs ``observe``'s values (a run must measure a loss for it)
    observes = False

    def __call__(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def observe(self, value: float) -> None:
        """Called after each epoch with the monitored metric (only plateau schedules use it)."""

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


@SCHEDULES.register("constant")
class Constant(Schedule):
    name = "constant"

    def __call__(self, epoch, base_lr):
        return base_lr


@SCHEDULES.register("step")
class Step(Schedule):
    """``base_lr * gamma ** (epoch // step_size)``."""

    name = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1):
        if int(step_size) < 1:
            raise ConfigError(f"step schedule: step_size must be >= 1, got {step_size}")
        if not 0 < float(gamma) <= 1:
            raise ConfigError(f"step schedule: gamma must be in (0, 1], got {gamma}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


@SCHEDULES.register("inverse_scaling", "invscaling")
class InverseScaling(Schedule):
    """``base_lr / (epoch + 1) ** power``, ``epoch`` counting the epochs completed (from 0).

    Also registered as ``'invscaling'``, but it is *not* scikit-learn's
    ``learning_rate='invscaling'``: that one has the same form with ``t`` counting the training
    *samples* seen (its ``t_``, ``n_samples`` more after every epoch), so after ``e`` epochs of
    ``n`` rows its rate is ``learning_rate_init / (e * n + 1) ** power_t``, not
    ``base_lr / (e + 1) ** power`` (for large ``e`` about ``n ** power`` times smaller: 245 times
    for 60,000 rows and ``power=0.5``). Both change the rate once per epoch (from the base rate
    during the first), and scikit-learn uses its rule with ``solver='sgd'`` only.
    """

    name = "inverse_scaling"

    def __init__(self, power: float = 0.5):
        if not 0 < float(power) < math.inf:
            raise ConfigError(f"inverse_scaling: power must be a finite number > 0, got {power}")
        self.power = float(power)

    def __call__(self, epoch, base_lr):
        return base_lr / (epoch + 1) ** self.power


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """``min_lr + (base_lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2``, held at ``min_lr``
    after ``epochs`` (PyTorch's ``CosineAnnealingLR`` rises again there; up to ``epochs`` the two
    agree, tested). No warm restarts."""

    name = "cosine"

    def __init__(self, epochs: int = 50, min_lr: float = 0.0):
        if int(epochs) < 1:
            raise ConfigError(f"cosine schedule: epochs must be >= 1, got {epochs}")
        if not 0 <= float(min_lr) < math.inf:  # a negative rate would climb the loss
            raise ConfigError(f"cosine schedule: min_lr must be a finite number >= 0, got {min_lr}")
        self.epochs, self.min_lr = int(epochs), float(min_lr)

    def __call__(self, epoch, base_lr):
        t = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t))


@SCHEDULES.register("reduce_on_plateau", "plateau")
class ReduceOnPlateau(Schedule):
    """Multiply the rate by ``factor`` when the monitored value (lower is better) has not
    improved by more than ``min_delta`` for more than ``patience`` epochs in a row (then the count
    starts again), never reducing it below ``min_lr``.

    ``min_lr`` bounds reductions only: a reduced rate is ``max(rate * factor, min_lr)``, applied
    when that is smaller than the current rate, so a ``min_lr`` at or above the base rate leaves
    the rate at the base rate (never raises it). This is PyTorch's
    ``ReduceLROnPlateau(mode='min', factor, patience, threshold=min_delta, threshold_mode='abs',
    cooldown=0, min_lr, eps=0)``, rate for rate (tested).
    """

    name = "reduce_on_plateau"
    observes = True

    def __init__(self, factor: float = 0.5, patience: int = 3, min_delta: float = 1e-4, min_lr: float = 0.0):
        if not 0 < float(factor) < 1:
            raise ConfigError(f"reduce_on_plateau: factor must be in (0, 1), got {factor}")
        if int(patience) < 0:
            raise ConfigError(f"reduce_on_plateau: patience must be >= 0, got {patience}")
        for key, value in (("min_delta", min_delta), ("min_lr", min_lr)):
            if not 0 <= float(value) < math.inf:
                raise ConfigError(f"reduce_on_plateau: {key} must be a finite number >= 0, got {value}")
        self.factor, self.patience = float(factor), int(patience)
        self.min_delta, self.min_lr = float(min_delta), float(min_lr)
        self._best = math.inf
        self._bad = 0
        self._scale = 1.0

    def __call__(self, epoch, base_lr):
        # the reductions so far, floored at min_lr; a floor above base_lr does not raise the rate
        return min(base_lr, max(base_lr * self._scale, self.min_lr))

    def observe(self, value):
        if value < self._best - self.min_delta:
            self._best, self._bad = value, 0
        else:
            self._bad += 1
            if self._bad > self.patience:
                self._scale *= self.factor
                self._bad = 0

    def state(self):
        return {"best": self._best if math.isfinite(self._best) else None, "bad": self._bad, "scale": self._scale}

    def load_state(self, state):
        best, bad, scale = state.get("best"), state["bad"], state["scale"]
        number = (int, float)
        if best is not None and (isinstance(best, bool) or not isinstance(best, number) or not math.isfinite(best)):
            raise ConfigError(f"reduce_on_plateau state: best must be a finite number, got {best!r}")
        if type(bad) is not int or not 0 <= bad <= self.patience:  # reset to 0 once it passes patience
            raise ConfigError(f"reduce_on_plateau state: bad must be an integer from 0 to {self.patience}, got {bad!r}")
        if isinstance(scale, bool) or not isinstance(scale, number) or not 0 <= scale <= 1:  # NaN fails this too
            raise ConfigError(f"reduce_on_plateau state: scale must be a number from 0 to 1, got {scale!r}")
        self._best = math.inf if best is None else float(best)
        self._bad, self._scale = bad, float(scale)


def get_schedule(spec: str | dict | None) -> Schedule:
    if spec is None:
        return Constant()
    cfg = dict(spec) if isinstance(spec, dict) else {"name": spec}
    cls = SCHEDULES.get(cfg.pop("name"))
    check_settings("schedule", cls.name, cls, cfg)
    try:
        return cls(**cfg)
    except TypeError as exc:
        raise ConfigError(f"schedule {cls.name!r}: {exc}") from None
