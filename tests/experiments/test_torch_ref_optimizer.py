"""The PyTorch reference cells train with the optimizer the spec names, all its settings included."""

from __future__ import annotations

import numpy as np
import pytest

from mlplab.errors import ConfigError

torch = pytest.importorskip("torch")


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(48, 4)).astype(np.float32), rng.integers(0, 3, 48)


def _train(optimizer):
    from mlplab.experiments.protocols.torch_ref import train_torch

    X, y = _data()
    return train_torch([4, 6, 3], "relu", optimizer, 16, 2, 0, X, y, None, None)


def _weights(result):
    return [np.asarray(a) for a in result["weights"]]  # W0, b0, W1, b1


def test_adam_betas_and_eps_are_used():
    base = _weights(_train({"name": "adam", "lr": 0.01}))
    same = _weights(_train({"name": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}))
    for a, b in zip(base, same):
        np.testing.assert_array_equal(a, b)
    for changed in ({"beta1": 0.0}, {"beta2": 0.5}, {"eps": 0.5}):
        other = _weights(_train({"name": "adam", "lr": 0.01, **changed}))
        assert any(not np.array_equal(a, b) for a, b in zip(base, other)), changed


def test_adam_eps_on_v_has_no_torch_equivalent():
    with pytest.raises(ConfigError, match="eps_on='v' has no PyTorch equivalent"):
        _train({"name": "adam", "lr": 0.01, "eps_on": "v"})
