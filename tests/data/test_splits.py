"""Splits and subsets: determinism, stratification, scikit-learn compatibility."""

from __future__ import annotations

import numpy as np
import pytest
from datahelpers import real_mnist_dir
from sklearn.model_selection import train_test_split

from mlplab.data import Dataset, load_dataset
from mlplab.data.splits import (
    all_samples,
    as_generator,
    balanced_ovr_subset,
    canonical,
    holdout_split,
    sklearn_train_test_split_indices,
    stratified_split,
    textbook_split,
    validation_split,
)
from mlplab.errors import ConfigError, DataError


def labels(n=1000, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def fake_dataset(n_train, n_test, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    ytr = rng.integers(0, 10, n_train)
    yte = rng.integers(0, 10, n_test)
    return Dataset(
        name="fake", X_train=np.arange(n_train, dtype=np.int64)[:, None] % 256,
        y_train=ytr, X_test=np.arange(n_test, dtype=np.int64)[:, None] % 256, y_test=yte,
        image_shape=(1, 1), n_classes=10, pixel_max=255, class_names=tuple("0123456789"), source="test",
    )


def test_as_generator():
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert as_generator(5).integers(1000) == np.random.default_rng(5).integers(1000)
    for bad in (None, 1.5, -1, True, "3"):
        with pytest.raises(ConfigError):
            as_generator(bad)


def test_stratified_split_deterministic_disjoint_stratified():
    y = labels(1003)
    tr, te = stratified_split(y, 0.3, seed=42)
    tr2, te2 = stratified_split(y, 0.3, seed=42)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)
    assert len(te) == round(0.3 * 1003) and len(tr) + len(te) == 1003
    assert np.intersect1d(tr, te).size == 0
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)
    assert tr.dtype == np.int64
    counts, test_counts = np.bincount(y), np.bincount(y[te], minlength=10)
    assert np.all(np.abs(test_counts - 0.3 * counts) <= 1)
    _, te3 = stratified_split(y, 0.3, seed=43)
    assert not np.array_equal(te, te3)
    _, te4 = stratified_split(y, 0.3, seed=np.random.default_rng(42))
    np.testing.assert_array_equal(te, te4)


def test_stratified_split_bad_fraction():
    with pytest.raises(ConfigError, match="between 0 and 1"):
        stratified_split(labels(), 1.0, 0)
    with pytest.raises(ConfigError, match="empty part"):
        stratified_split(labels(10), 0.01, 0)
    with pytest.raises(DataError, match="1-D"):
        stratified_split(np.zeros((3, 3)), 0.5, 0)


def test_validation_split_is_stratified():
    y = labels(500)
    tr, va = validation_split(y, 0.1, seed=3)
    assert len(va) == 50 and np.intersect1d(tr, va).size == 0


def test_sklearn_compat_indices_equal_sklearn():
    y = labels(700)
    tr, te = sklearn_train_test_split_indices(700, y)
    rtr, rte = train_test_split(np.arange(700), test_size=0.3, random_state=123, stratify=y)
    np.testing.assert_array_equal(tr, rtr)
    np.testing.assert_array_equal(te, rte)
    assert len(tr) == 490 and len(te) == 210
    with pytest.raises(DataError, match="n=5"):
        sklearn_train_test_split_indices(5, y)


def test_canonical_and_all_samples():
    ds = fake_dataset(60, 20)
    X, y = all_samples(ds)
    assert X.shape == (80, 1) and y.shape == (80,)
    s = canonical(ds)
    assert s.sizes() == (60, 0, 20)
    parts = s.arrays(X, y)
    np.testing.assert_array_equal(parts["test"][1], ds.y_test)
    np.testing.assert_array_equal(parts["train"][0], ds.X_train)


def test_textbook_split_replicates_the_book():
    ds = fake_dataset(60000, 10000)
    X, y = all_samples(ds)
    s = textbook_split(ds)
    assert s.sizes() == (55000, 5000, 10000)
    # The book: train_test_split(X, y, test_size=10000, random_state=123, stratify=y), then
    # train_test_split(X_temp, y_temp, test_size=5000, random_state=123, stratify=y_temp).
    X_temp, X_test, y_temp, y_test = train_test_split(X, y, test_size=10000, random_state=123, stratify=y)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_temp, y_temp, test_size=5000, random_state=123, stratify=y_temp)
    np.testing.assert_array_equal(X[s.test], X_test)
    np.testing.assert_array_equal(X[s.train], X_train)
    np.testing.assert_array_equal(y[s.valid], y_valid)
    assert len(np.unique(np.concatenate([s.train, s.valid, s.test]))) == 70000


def test_holdout_split():
    ds = fake_dataset(600, 100)
    s = holdout_split(ds, n_valid=50)
    assert s.sizes() == (550, 50, 100)
    assert s.valid[0] == 550 and s.test[0] == 600
    with pytest.raises(ConfigError):
        holdout_split(ds, n_valid=600)


def test_balanced_ovr_subset_counts():
    y = np.repeat(np.arange(10), 6000)
    idx = balanced_ovr_subset(y, target=3, n_pos=5000, seed=0)
    assert len(idx) == 5000 + 9 * 555 == 9995
    counts = np.bincount(y[idx], minlength=10)
    assert counts[3] == 5000 and all(counts[c] == 555 for c in range(10) if c != 3)
    assert len(np.unique(idx)) == len(idx)
    assert not np.all(np.diff(idx) > 0)  # shuffled
    np.testing.assert_array_equal(idx, balanced_ovr_subset(y, 3, seed=0))
    assert not np.array_equal(idx, balanced_ovr_subset(y, 3, seed=1))
    assert len(balanced_ovr_subset(y, 0, n_pos=100, n_neg_per_class=7, seed=0)) == 163


def test_balanced_ovr_subset_errors():
    y = np.repeat(np.arange(10), 100)
    with pytest.raises(DataError, match="class 0 has only 100 samples, 5000 requested"):
        balanced_ovr_subset(y, 0, seed=0)
    with pytest.raises(ConfigError, match="outside"):
        balanced_ovr_subset(y, 10, n_pos=10, seed=0)


# --------------------------------------------------------------------------- real MNIST
@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", data_dir=real_mnist_dir(), download=False)


def test_real_mnist_report_protocol(mnist):
    X, y = all_samples(mnist)
    tr, te = sklearn_train_test_split_indices(len(y), y, test_size=0.3, random_state=123)
    assert len(tr) == 49000 and len(te) == 21000
    rtr, rte = train_test_split(np.arange(70000), test_size=0.3, random_state=123, stratify=y)
    np.testing.assert_array_equal(te, rte)


def test_real_mnist_textbook_split(mnist):
    s = textbook_split(mnist)
    assert s.sizes() == (55000, 5000, 10000)
    _, y = all_samples(mnist)
    assert np.bincount(y[s.test]).tolist() == np.bincount(
        train_test_split(y, test_size=10000, random_state=123, stratify=y)[1]).tolist()


def test_real_mnist_balanced_subset(mnist):
    idx = balanced_ovr_subset(mnist.y_train, target=0, seed=0)
    assert len(idx) == 9995
