"""Weight initialisers. Each draws a ``(fan_in, fan_out)`` matrix from a ``np.random.Generator``.

Biases start at zero (the textbook's choice); only weights are drawn.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from mlplab.errors import ConfigError
from mlplab.registry import Registry, check_settings

Initializer = Callable[[np.random.Generator, int, int], np.ndarray]
INITIALIZERS: Registry[Callable[..., Initializer]] = Registry("initializer")


@INITIALIZERS.register("normal")
def normal(std: float = 0.1, mean: float = 0.0) -> Initializer:
    """N(mean, std^2); the textbook uses std 0.1."""
    if not 0 < std < math.inf:
        raise ConfigError(f"initializer 'normal': std must be a finite number > 0, got {std}")
    return lambda rng, fan_in, fan_out: rng.normal(mean, std, size=(fan_in, fan_out))


@INITIALIZERS.register("standard_normal")
def standard_normal() -> Initializer:
    """N(0, 1)."""
    return lambda rng, fan_in, fan_out: rng.standard_normal((fan_in, fan_out))


@INITIALIZERS.register("uniform")
def uniform(low: float = -0.05, high: float = 0.05) -> Initializer:
    """U(low, high); report 2 used U(0, 1)."""
    if not high > low:
        raise ConfigError(f"initializer 'uniform': needs low < high, got low={low}, high={high}")
    if not math.isfinite(high - low):  # NumPy cannot draw from a range wider than the floats
        raise ConfigError(f"initializer 'uniform': the range high - low must be a finite number, "
                          f"got low={low}, high={high}")
    return lambda rng, fan_in, fan_out: rng.uniform(low, high, size=(fan_in, fan_out))


@INITIALIZERS.register("zeros")
def zeros() -> Initializer:
    return lambda rng, fan_in, fan_out: np.zeros((fan_in, fan_out))


@INITIALIZERS.register("glorot", "xavier", "glorot_uniform")
def glorot() -> Initializer:
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""

    def draw(rng, fan_in, fan_out):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out))

    return draw


@INITIALIZERS.register("he", "he_normal", "kaiming")
def he() -> Initializer:
    """N(0, 2 / fan_in) (He et al. 2015), for ReLU layers."""
    return lambda rng, fan_in, fan_out: rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def get_initializer(name: str, **params: float) -> Initializer:
    factory = INITIALIZERS.get(name)
    check_settings("initializer", INITIALIZERS.canonical(name), factory, params)
    return factory(**params)
