"""Scaler: exact textbook formulas, standardisation, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlplab.data.preprocessing import SCALER_KINDS, Scaler
from mlplab.errors import ConfigError, DataError


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (200, 30), dtype=np.uint8)
    X[:, 0] = 0  # a constant feature
    X[:3, 1] = 0
    X[3:, 1] = 0
    X[5, 1] = 1  # an almost constant one
    return X


def test_unit_and_symmetric_match_textbook_exactly(X):
    every = np.arange(256, dtype=np.uint8)[None, :]
    for dtype in (np.float32, np.float64):
        u = Scaler("unit").fit(every).transform(every, dtype=dtype)
        np.testing.assert_array_equal(u, (every / 255.).astype(dtype))
        s = Scaler("symmetric").fit(every).transform(every, dtype=dtype)
        np.testing.assert_array_equal(s, (((every / 255.) - .5) * 2).astype(dtype))
        assert u.dtype == dtype and s.dtype == dtype
    s = Scaler("symmetric").transform(X)
    assert s.min() >= -1 and s.max() <= 1 and s.flags.c_contiguous
    # Float input goes the float64 way and agrees with the lookup table.
    np.testing.assert_array_equal(Scaler("symmetric").transform(X.astype(np.float64)), s)


def test_digits_pixel_max():
    X = np.array([[0, 8, 16]], dtype=np.uint8)
    np.testing.assert_array_equal(Scaler("unit", pixel_max=16).transform(X), [[0, 0.5, 1]])
    np.testing.assert_array_equal(Scaler("symmetric", pixel_max=16).transform(X), [[-1, 0, 1]])


def test_output_contiguous_from_strided_input(X):
    view = X[:, ::2]
    out = Scaler("unit").transform(view)
    assert out.flags.c_contiguous and out.shape == view.shape
    assert Scaler("none").transform(view).flags.c_contiguous


def test_standard(X):
    sc = Scaler("standard")
    with pytest.raises(ConfigError, match="must be fit"):
        sc.transform(X)
    Z = sc.fit(X).transform(X, dtype=np.float64)
    assert Z.dtype == np.float64
    np.testing.assert_allclose(Z[:, 2:].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, 2:].std(axis=0), 1, rtol=1e-12)
    assert np.all(Z[:, 0] == 0)  # constant feature: no division by zero
    assert np.abs(Z[:, 1]).max() < 1 / (0.01 * 255) + 1e-9 + 1  # floored std keeps it small
    with pytest.raises(DataError, match="fit on 30 features, got 5"):
        sc.transform(X[:, :5])


def test_none_and_errors(X):
    np.testing.assert_array_equal(Scaler("none").transform(X), X.astype(np.float32))
    with pytest.raises(ConfigError, match="unknown scaler kind 'minmax'.*unit, symmetric, standard, none"):
        Scaler("minmax")
    with pytest.raises(DataError, match="2-D"):
        Scaler("unit").transform(X[0])
    with pytest.raises(ConfigError, match="float"):
        Scaler("unit").transform(X, dtype=np.int32)


@pytest.mark.parametrize("kind", SCALER_KINDS)
def test_round_trip_through_json(kind, X):
    sc = Scaler(kind).fit(X)
    d = json.loads(json.dumps(sc.to_dict()))
    back = Scaler.from_dict(d)
    np.testing.assert_array_equal(back.transform(X), sc.transform(X))


def test_round_trip_with_separate_arrays(tmp_path, X):
    sc = Scaler("standard").fit(X)
    d = sc.to_dict(include_arrays=False)
    assert d["arrays"] == "separate" and "mean" not in d
    np.savez(tmp_path / "s.npz", **sc.arrays())
    with np.load(tmp_path / "s.npz") as npz:
        back = Scaler.from_dict(json.loads(json.dumps(d)), arrays=dict(npz))
    np.testing.assert_array_equal(back.transform(X), sc.transform(X))
    with pytest.raises(ConfigError, match="scaler_mean"):
        Scaler.from_dict(d)


def test_from_dict_validation():
    with pytest.raises(ConfigError, match="unknown keys: colour"):
        Scaler.from_dict({"kind": "unit", "colour": 1})
    with pytest.raises(ConfigError, match="lacks 'kind'"):
        Scaler.from_dict({})
    with pytest.raises(ConfigError, match="finite"):
        Scaler.from_dict({"kind": "standard", "mean": [0.0], "std": [0.0]})


def test_inverse_transform(X):
    for kind in SCALER_KINDS:
        sc = Scaler(kind).fit(X)
        np.testing.assert_allclose(sc.inverse_transform(sc.transform(X, np.float64)), X, atol=1e-9)


@pytest.mark.parametrize("kind", SCALER_KINDS)
def test_transform_and_inverse_return_new_arrays(kind, X):
    for dtype in (np.float32, np.float64):
        Xf = np.ascontiguousarray(X, dtype=dtype)  # already what transform returns for kind 'none'
        sc = Scaler(kind).fit(Xf)
        Z = sc.transform(Xf, dtype=dtype)
        assert Z.dtype == dtype and Z.flags.c_contiguous and not np.shares_memory(Z, Xf)
        Z[...] = 42  # "a scaled copy": writing to it leaves the caller's array alone
        np.testing.assert_array_equal(Xf, X)
        P = sc.inverse_transform(Z)
        assert not np.shares_memory(P, Z)


def test_from_dict_copies_separate_arrays(X):
    sc = Scaler("standard").fit(X)
    arrays = sc.arrays()
    back = Scaler.from_dict(sc.to_dict(include_arrays=False), arrays)
    expected = sc.transform(X)
    arrays["scaler_mean"][...], arrays["scaler_std"][...] = 0, 1  # the caller reuses its arrays
    np.testing.assert_array_equal(back.transform(X), expected)
