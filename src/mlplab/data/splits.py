"""Seeded, deterministic splits and subsets, as index arrays.

Every function takes ``seed`` as an int or an ``np.random.Generator`` (never the global
NumPy state). Index arrays are ``int64``. Splits of a :class:`Dataset` are expressed as
indices into :func:`all_samples` (train then test, original order), so one convention covers
the canonical split, the textbook's 55,000/5,000/10,000 protocol and the report's 70/30.

The textbook protocol (Raschka, Liu & Mirjalili, *Machine Learning with PyTorch and
Scikit-Learn*, ch. 11, ``ch11.py`` in rasbt/machine-learning-book) is, exactly::

    X, y = fetch_openml('mnist_784', version=1, return_X_y=True)   # 70,000: train then test
    X_temp, X_test, y_temp, y_test = train_test_split(
        X, y, test_size=10000, random_state=123, stratify=y)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_temp, y_temp, test_size=5000, random_state=123, stratify=y_temp)

so its 10,000 test images are a stratified random draw from all 70,000, *not* the canonical
MNIST test set, and its 5,000 validation images a second stratified draw from the rest.
:func:`textbook_split` reproduces that bit for bit (via scikit-learn on index arrays);
:func:`holdout_split` gives the other common reading (first 55,000 train / next 5,000
validation / canonical test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlplab.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from mlplab.data.datasets import Dataset

__all__ = [
    "Split",
    "as_generator",
    "canonical",
    "all_samples",
    "stratified_split",
    "validation_split",
    "sklearn_train_test_split_indices",
    "textbook_split",
    "holdout_split",
    "balanced_ovr_subset",
    "SPLIT_KINDS",
    "split_rows",
    "stratified_subset",
]


def as_generator(seed: int | np.random.Generator) -> np.random.Generator:
    """``seed`` itself if it is a Generator, else ``np.random.default_rng(seed)``.

    ``None`` is refused: every random choice in mlplab is reproducible from a seed.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an int or a numpy Generator, got {seed!r}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays into :func:`all_samples` of a dataset (``valid`` may be empty)."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def arrays(self, X: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train": (X, y), "valid": (X, y), "test": (X, y)}`` gathered from X, y."""
        return {part: (X[idx], y[idx]) for part, idx in
                (("train", self.train), ("valid", self.valid), ("test", self.test))}

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.valid), len(self.test)


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {y.shape}")
    return y


def all_samples(ds: "Dataset") -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: train then test concatenated, in original order (70,000 for MNIST)."""
    return np.concatenate([ds.X_train, ds.X_test]), np.concatenate([ds.y_train, ds.y_test])


def canonical(ds: "Dataset") -> Split:
    """The dataset's own train/test split, as indices into :func:`all_samples`."""
    n_tr, n_te = len(ds.y_train), len(ds.y_test)
    return Split(
        train=np.arange(n_tr, dtype=np.int64),
        valid=np.empty(0, dtype=np.int64),
        test=np.arange(n_tr, n_tr + n_te, dtype=np.int64),
    )


def _check_fraction(fraction: float, what: str) -> float:
    f = float(fraction)
    if not 0.0 < f < 1.0:
        raise ConfigError(f"{what} must be between 0 and 1 (exclusive), got {fraction!r}")
    return f


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so each class keeps its proportion; returns sorted ``(train_idx, test_idx)``.

    The test size is ``round(test_fraction * n)``, shared out across classes by largest
    remainder (ties to the larger class, then the smaller label), each class's members drawn
    without replacement by a Generator seeded from ``seed``.
    """
    y = _labels(y)
    f = _check_fraction(test_fraction, "test_fraction")
    rng = as_generator(seed)
    n = len(y)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_test = int(round(f * n))
    if n_test == 0 or n_test == n:
        raise ConfigError(f"test_fraction={test_fraction} leaves an empty part for {n} samples")
    exact = counts * (n_test / n)
    take = np.floor(exact).astype(np.int64)
    short = n_test - int(take.sum())
    if short:
        order = np.lexsort((np.arange(len(classes)), -counts, -(exact - take)))
        take[order[:short]] += 1
    test_parts = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        test_parts.append(rng.choice(members, size=int(take[c]), replace=False))
    test_idx = np.sort(np.concatenate(test_parts)).astype(np.int64)
    mask = np.ones(n, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask).astype(np.int64), test_idx


def validation_split(
    y: np.ndarray, fraction: float, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train_idx, valid_idx)``: :func:`stratified_split` under another name."""
    return stratified_split(y, fraction, seed)


def sklearn_train_test_split_indices(
    n: int, y: np.ndarray, test_size: float | int = 0.3, random_state: int = 123
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly the indices ``train_test_split(..., test_size, stratify=y, random_state)``
    of scikit-learn would put in train and test, in scikit-learn's (shuffled) order.

    The published report's protocol: all 70,000 MNIST images (train then test, original
    order), ``test_size=0.3, random_state=123`` -> 49,000 / 21,000.
    """
    from sklearn.model_selection import train_test_split

    y = _labels(y)
    if len(y) != n:
        raise DataError(f"n={n} but y holds {len(y)} labels")
    idx = np.arange(n, dtype=np.int64)
    tr, te = train_test_split(idx, test_size=test_size, random_state=random_state, stratify=y)
    return np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)


def textbook_split(ds: "Dataset", random_state: int = 123) -> Split:
    """The split of Raschka et al., ch. 11 (see the module docstring), as indices into
    :func:`all_samples`: 55,000 train / 5,000 validation / 10,000 test for MNIST."""
    _, y = all_samples(ds)
    n = len(y)
    temp, test = sklearn_train_test_split_indices(n, y, test_size=10000, random_state=random_state)
    tr_pos, va_pos = sklearn_train_test_split_indices(
        len(temp), y[temp], test_size=5000, random_state=random_state
    )
    return Split(train=temp[tr_pos], valid=temp[va_pos], test=test)


#: the named splits of train runs and experiment cells (``--split``, ``[split] kind``)
SPLIT_KINDS = ("canonical", "stratified", "sklearn", "textbook")


def split_rows(ds: "Dataset", y_all: np.ndarray, kind: str, test_fraction: float,
               seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(train_idx, test_idx, description)`` of a named split (:data:`SPLIT_KINDS`), as indices
    into :func:`all_samples` (whose labels are ``y_all``). The one definition train runs,
    experiment cells and ``mlplab evaluate`` share, so each rebuilds the others' rows."""
    if kind == "canonical":
        sp = canonical(ds)
        return sp.train, sp.test, f"canonical {len(sp.train)}/{len(sp.test)}"
    if kind == "stratified":
        tr, te = stratified_split(y_all, test_fraction, seed)
        return tr, te, (f"stratified {len(tr)}/{len(te)} of all {len(y_all)} "
                        f"(test fraction {test_fraction}, seed {seed})")
    if kind == "sklearn":  # the report's train_test_split(stratify=y), in its shuffled order
        tr, te = sklearn_train_test_split_indices(len(y_all), y_all, test_fraction, seed)
        return tr, te, (f"scikit-learn train_test_split(test_size={test_fraction}, random_state={seed}, "
                        f"stratify=y) over all {len(y_all)}: {len(tr)}/{len(te)}")
    if kind == "textbook":
        sp = textbook_split(ds, random_state=seed)
        return sp.train, sp.test, f"textbook {len(sp.train)}/{len(sp.valid)}/{len(sp.test)} (validation part unused)"
    raise ConfigError(f"split {kind!r}: expected {', '.join(SPLIT_KINDS)}")


def stratified_subset(idx: np.ndarray, y_all: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``n`` of the rows ``idx`` (indices into labels ``y_all``), stratified, in their order;
    all of them when ``n`` is ``None`` or not smaller."""
    idx = np.asarray(idx)
    if not n or n >= len(idx):
        return idx
    keep, _ = stratified_split(y_all[idx], 1 - n / len(idx), seed)
    return idx[np.sort(keep)]


def holdout_split(ds: "Dataset", n_valid: int = 5000) -> Split:
    """First ``n_train - n_valid`` training images / last ``n_valid`` training images /
    canonical test set (55,000 / 5,000 / 10,000 for MNIST), no randomness."""
    n_tr, n_te = len(ds.y_train), len(ds.y_test)
    if not 0 < n_valid < n_tr:
        raise ConfigError(f"n_valid={n_valid} must be between 1 and {n_tr - 1} for {ds.name}")
    cut = n_tr - n_valid
    return Split(
        train=np.arange(cut, dtype=np.int64),
        valid=np.arange(cut, n_tr, dtype=np.int64),
        test=np.arange(n_tr, n_tr + n_te, dtype=np.int64),
    )


def balanced_ovr_subset(
    y: np.ndarray,
    target: int,
    n_pos: int = 5000,
    n_neg_per_class: int | None = None,
    seed: int | np.random.Generator = 0,
    n_classes: int | None = None,
) -> np.ndarray:
    """Indices of a balanced one-vs-rest subset, shuffled.

    ``n_pos`` samples of class ``target`` plus ``n_neg_per_class`` of every other class
    (default ``n_pos // (k - 1)``: 555 each for 5,000 and k = 10, 9,995 in all), drawn
    without replacement.
    """
    y = _labels(y)
    k = int(n_classes) if n_classes is not None else int(y.max()) + 1
    if k < 2:
        raise ConfigError(f"one-vs-rest needs at least 2 classes, labels give {k}")
    if not 0 <= int(target) < k:
        raise ConfigError(f"target class {target} is outside [0, {k})")
    if n_pos <= 0:
        raise ConfigError(f"n_pos must be positive, got {n_pos}")
    if n_neg_per_class is None:
        n_neg_per_class = n_pos // (k - 1)
    if n_neg_per_class < 0:
        raise ConfigError(f"n_neg_per_class must be >= 0, got {n_neg_per_class}")
    rng = as_generator(seed)
    parts = []
    for c in range(k):
        members = np.flatnonzero(y == c)
        want = n_pos if c == target else n_neg_per_class
        if len(members) < want:
            raise DataError(
                f"class {c} has only {len(members)} samples, {want} requested for the "
                f"one-vs-rest subset of class {target}"
            )
        parts.append(rng.choice(members, size=want, replace=False))
    idx = np.concatenate(parts).astype(np.int64)
    return idx[rng.permutation(len(idx))]
