"""The dataset registry: every dataset name a user can type resolves here.

``load_dataset`` returns a :class:`Dataset` with flattened ``uint8`` images and ``int64``
labels. Names: ``mnist``, ``fashion-mnist`` (fetched, verified and cached by
:mod:`mlplab.data.fetch`), ``digits`` (scikit-learn's bundled 8x8 digits, always offline),
or a path to a folder holding the four IDX files (parse-validated only; ``~`` is expanded).

A folder's dataset is named after the known dataset whose checksums its files match, else
after the folder's absolute path (:func:`dataset_name` gives the name without loading it).
Its classes are 0 to its largest training label, at least 10 (see :func:`_folder_classes`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mlplab.data.fetch import (
    FILE_KEYS,
    FILENAMES,
    KNOWN_DATASETS,
    FetchResult,
    ProgressCallback,
    WarnCallback,
    checked_data_dir,
    fetch_dataset,
    folder_checksums,
    folder_dataset_name,
    load_idx_folder,
)
from mlplab.data.idx import check_pair
from mlplab.errors import DataError, DataFormatError

__all__ = ["Dataset", "load_dataset", "dataset_name", "list_datasets", "dataset_info", "data_record",
           "data_identity", "current_data_identity", "data_changes", "changed_files", "DIGITS_SPLIT_SEED"]

DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
#: digits' canonical split: stratified 75/25 with this seed (mlplab.data.splits.stratified_split).
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25

_DESCRIPTIONS = {
    "mnist": "MNIST handwritten digits, 28x28, 60,000 train / 10,000 test",
    "fashion-mnist": "Fashion-MNIST (Zalando) clothing images, 28x28, 60,000 train / 10,000 test",
    "digits": "scikit-learn's bundled 8x8 digits (UCI), 1,797 images, offline; 75/25 stratified split, seed 0",
}
_CLASS_NAMES = {"mnist": DIGIT_NAMES, "fashion-mnist": FASHION_NAMES, "digits": DIGIT_NAMES}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset held in memory: flattened uint8 images, int64 labels, canonical split.

    Attributes
    ----------
    X_train, X_test : (n, d) uint8, ``d = prod(image_shape)``, C-contiguous.
    y_train, y_test : (n,) int64 in ``[0, n_classes)``.
    image_shape : (28, 28) or (8, 8).
    pixel_max : the largest possible pixel value (255, or 16 for digits).
    source : where the files came from (a folder, the cache, scikit-learn).
    verified : every file's SHA-256 matched a known value (false for ``digits``: scikit-learn
        ships it inside its package, there is no file to check).
    sha256 : file name -> SHA-256 of the decompressed file (empty for ``digits``).
    files : file name -> absolute path of the file it was read from (empty for ``digits``).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    n_classes: int
    pixel_max: int
    class_names: tuple[str, ...]
    source: str
    verified: bool = False
    sha256: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.n_train}, test={self.n_test}, "
            f"image_shape={self.image_shape}, n_classes={self.n_classes}, source={self.source!r})"
        )


def list_datasets() -> dict[str, str]:
    """Registered dataset names -> one-line descriptions (a folder path is accepted too)."""
    return dict(sorted(_DESCRIPTIONS.items()))


def _unknown(name: str) -> DataError:
    return DataError(
        f"unknown dataset {name!r}: valid names are {', '.join(sorted(_DESCRIPTIONS))}, "
        "or a path to a folder holding the four IDX files"
    )


def _resolve(name_or_path: str | os.PathLike) -> str | Path:
    """What a dataset argument names: a registered name (lower case), or a folder (``~`` expanded)."""
    if isinstance(name_or_path, os.PathLike):
        return _expand(Path(name_or_path))
    name = str(name_or_path)
    key = name.strip().lower()
    if not key:  # Path("") is the current folder: never read it by accident
        raise DataError("dataset name is empty: give mnist, fashion-mnist, digits or a folder of IDX files")
    if key == "digits" or key in KNOWN_DATASETS:
        return key
    folder = _expand(Path(name))
    if os.sep in name or (os.altsep is not None and os.altsep in name) or name.startswith((".", "~")) \
            or folder.is_dir():
        return folder
    raise _unknown(name)


def _expand(path: Path) -> Path:
    try:
        return path.expanduser()
    except RuntimeError:  # ~user of no user: "no such folder" names it as given
        return path


def _from_fetch(result: FetchResult, n_classes: int, class_names: tuple[str, ...]) -> Dataset:
    f = result.files
    Xtr, ytr = check_pair(
        f["train_images"].array, f["train_labels"].array,
        str(f["train_images"].path), str(f["train_labels"].path), n_classes,
    )
    Xte, yte = check_pair(
        f["test_images"].array, f["test_labels"].array,
        str(f["test_images"].path), str(f["test_labels"].path), n_classes,
    )
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise DataError(
            f"{f['test_images'].path}: test images are {Xte.shape[1:]}, train images {Xtr.shape[1:]}"
        )
    shape = tuple(int(s) for s in Xtr.shape[1:])
    return Dataset(
        name=result.name,
        X_train=Xtr.reshape(Xtr.shape[0], -1),
        y_train=ytr,
        X_test=Xte.reshape(Xte.shape[0], -1),
        y_test=yte,
        image_shape=shape,  # type: ignore[arg-type]
        n_classes=n_classes,
        pixel_max=255,
        class_names=class_names,
        source=result.source,
        verified=result.verified,
        sha256={FILENAMES[k]: f[k].sha256 for k in FILE_KEYS},
        files={FILENAMES[k]: os.path.abspath(f[k].path) for k in FILE_KEYS},
    )


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    from mlplab.data.splits import stratified_split

    bunch = load_digits()
    X = np.ascontiguousarray(bunch.data, dtype=np.uint8)  # values 0..16, exact in uint8
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return Dataset(
        name="digits",
        X_train=X[tr],
        y_train=y[tr],
        X_test=X[te],
        y_test=y[te],
        image_shape=(8, 8),
        n_classes=10,
        pixel_max=16,
        class_names=DIGIT_NAMES,
        source="scikit-learn bundled digits (sklearn.datasets.load_digits)",
        verified=False,
    )


def load_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
) -> Dataset:
    """Load a dataset by name (``mnist``, ``fashion-mnist``, ``digits``) or folder path.

    For the fetched datasets see :func:`mlplab.data.fetch.fetch_dataset` for the look-up
    order (data dir, cache, system copies, download) and the meaning of the callbacks.
    A folder path (``~`` expanded) is read as the four standard IDX files (raw or .gz) and
    parse-validated; see the module docstring for its name and classes.
    A data dir given (or ``$MLPLAB_DATA_DIR``) that is not a folder is an error for every dataset,
    also for those that do not read it.
    """
    checked_data_dir(data_dir)
    target = _resolve(name_or_path)
    if isinstance(target, Path):
        return _load_folder(target)
    if target == "digits":
        return _load_digits()
    result = fetch_dataset(target, data_dir, download=download, progress=progress, warn=warn)
    return _from_fetch(result, 10, _CLASS_NAMES[target])


def dataset_name(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> str:
    """The name :func:`load_dataset` gives a dataset (``Dataset.name``, recorded in model files),
    without loading it: a registered name in lower case, or for a folder
    :func:`~mlplab.data.fetch.folder_dataset_name` (a known dataset's name only when its
    checksums match, else the folder's absolute path). Cheap: no download, nothing parsed."""
    checked_data_dir(data_dir)
    target = _resolve(name_or_path)
    return folder_dataset_name(target) if isinstance(target, Path) else target


def _load_folder(folder: Path) -> Dataset:
    result = load_idx_folder(folder)
    n_classes = _folder_classes(result)
    names = _CLASS_NAMES.get(result.name, DIGIT_NAMES) if n_classes == 10 else tuple(map(str, range(n_classes)))
    return _from_fetch(result, n_classes, names)


def _folder_classes(result: FetchResult) -> int:
    """The class count of a folder dataset, from its training labels: 0 to the largest, and at
    least 10 (a folder of some of the digits keeps ten outputs; EMNIST's 26 letters or 47
    classes widen it). A class may have no training image (EMNIST's letters start at 1), but
    then a test label may not use it: a test label that is not a training class is refused, as
    is a class above 9 that no training image has (a corrupt label, not a class). Labels are
    uint8 (IDX magic 2049), so none is negative; malformed label files are left to
    :func:`~mlplab.data.idx.check_pair`."""
    train, test = result.files["train_labels"], result.files["test_labels"]
    if not _is_labels(train.array) or not train.array.size:
        return 10
    counts = np.bincount(train.array, minlength=256)
    top = int(train.array.max())
    missing = np.flatnonzero(counts[10:top] == 0) + 10
    if missing.size:
        raise DataFormatError(
            f"{train.path}: no image has label {int(missing[0])}, yet label {top} occurs (at index "
            f"{int(np.argmax(train.array == top))}): a folder dataset's classes are 0 to its largest "
            "training label, and none above 9 may be missing"
        )
    if _is_labels(test.array):
        unseen = counts[test.array] == 0
        if unseen.any():
            i = int(np.argmax(unseen))
            raise DataFormatError(
                f"{test.path}: label {int(test.array[i])} at index {i} is not a class of the training "
                f"labels ({train.path}): no training image has it"
            )
    return max(10, top + 1)


def _is_labels(array: np.ndarray) -> bool:
    return array.ndim == 1 and array.dtype == np.uint8


def data_record(ds: Dataset) -> dict[str, Any]:
    """Which data exactly a run used, as its ``metrics.json`` records it (``"data"``), from what
    loading the dataset already computed (nothing is read or hashed again):

    ``name`` and ``source`` (as :class:`Dataset` has them); for IDX files (``mnist``,
    ``fashion-mnist``, a folder) ``files``, each file's name -> ``{"path": absolute path read,
    "sha256": SHA-256 of its decompressed bytes}`` (the hashes ``SHA256SUMS`` files list) and
    ``checksums_verified`` (they matched a known dataset's); for ``digits``, which scikit-learn
    ships inside its package, ``sklearn_version`` instead."""
    record: dict[str, Any] = {"name": ds.name, "source": str(ds.source)}
    if ds.sha256:
        record["files"] = {name: {"path": ds.files.get(name), "sha256": sha} for name, sha in ds.sha256.items()}
        record["checksums_verified"] = bool(ds.verified)
    elif ds.name == "digits":
        import sklearn  # loaded already: it gave the data

        record["sklearn_version"] = sklearn.__version__
    return record


def data_identity(record: Any) -> dict[str, Any] | None:
    """What a :func:`data_record` says about *which* data, leaving out *where* it was read:
    ``name`` and, for IDX files, ``files`` (file name -> SHA-256 of its decompressed bytes), or
    for ``digits`` ``sklearn_version``. The same bytes read from another folder are the same
    data. ``None`` for anything that is not a data record (older files record none)."""
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        return None
    identity: dict[str, Any] = {"name": record["name"]}
    files = record.get("files")
    if isinstance(files, dict):
        identity["files"] = {str(name): f.get("sha256") if isinstance(f, dict) else f
                             for name, f in sorted(files.items())}
    if "sklearn_version" in record:
        identity["sklearn_version"] = record["sklearn_version"]
    return identity


def current_data_identity(name_or_path: str | os.PathLike,
                          data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The :func:`data_identity` of the data :func:`load_dataset` would load now, as cheaply as it
    can be known exactly: ``mnist`` and ``fashion-mnist`` load only when every file matches its
    known checksum, so those are their identity (nothing is read); ``digits`` is scikit-learn's
    version; a folder's four files are hashed, streamed, without being parsed. Raises
    :class:`DataError` when a folder's files are missing or unreadable, or ``data_dir`` is given
    and is not a folder (loading would fail too)."""
    checked_data_dir(data_dir)
    target = _resolve(name_or_path)
    if isinstance(target, Path):
        name, sha = folder_checksums(target)
        return {"name": name, "files": {FILENAMES[k]: sha[k] for k in FILE_KEYS}}
    if target == "digits":
        import sklearn

        return {"name": "digits", "sklearn_version": sklearn.__version__}
    known = KNOWN_DATASETS[target].sha256
    return {"name": target, "files": {FILENAMES[k]: known[k] for k in FILE_KEYS}}


def data_changes(before: Any, now: Any) -> list[str]:
    """How the data of record (or identity) ``now`` differs from ``before``'s, one phrase per
    difference, e.g. ``"train-labels-idx1-ubyte SHA-256 e3a52ff91522 -> af1147fe59f4"``: each
    IDX file whose SHA-256 differs, scikit-learn's version of ``digits``, and the dataset's name
    unless both are IDX files (a folder is named by its path: the same files elsewhere are the
    same data; a known dataset by its checksums). ``[]`` when they are the same data."""
    a, b = data_identity(before) or {}, data_identity(now) or {}
    fa, fb = a.get("files") or {}, b.get("files") or {}
    changes = []
    if a.get("name") != b.get("name") and not (fa and fb):
        changes.append(f"dataset {a.get('name')} -> {b.get('name')}")
    changes += [f"{name} SHA-256 {_sha_text(fa.get(name))} -> {_sha_text(fb.get(name))}"
                for name in sorted(set(fa) | set(fb)) if fa.get(name) != fb.get(name)]
    if a.get("sklearn_version") != b.get("sklearn_version"):
        changes.append(f"scikit-learn {a.get('sklearn_version') or 'none'} -> {b.get('sklearn_version') or 'none'}")
    return changes


def changed_files(before: Any, now: Any) -> list[str]:
    """The IDX files whose SHA-256 differs between the data of ``before`` and ``now`` (records or
    identities), by name, as :func:`data_changes` lists them; ``[]`` when no file differs (the
    same data, or a change of name or of scikit-learn's version only)."""
    fa = (data_identity(before) or {}).get("files") or {}
    fb = (data_identity(now) or {}).get("files") or {}
    return sorted(name for name in set(fa) | set(fb) if fa.get(name) != fb.get(name))


def _sha_text(sha: Any) -> str:
    return sha[:12] if isinstance(sha, str) else "absent"


def dataset_info(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
) -> dict[str, Any]:
    """A JSON-able summary for ``mlplab data info``: where the data lives, counts, class
    balance and whether checksums were verified. Does not download unless asked."""
    ds = load_dataset(name, data_dir=data_dir, download=download, progress=progress, warn=warn)
    train_counts = np.bincount(ds.y_train, minlength=ds.n_classes)
    test_counts = np.bincount(ds.y_test, minlength=ds.n_classes)
    return {
        "name": ds.name,
        "description": _DESCRIPTIONS.get(ds.name, "IDX files from a folder"),
        "source": ds.source,
        "n_train": ds.n_train,
        "n_test": ds.n_test,
        "image_shape": list(ds.image_shape),
        "n_features": ds.n_features,
        "n_classes": ds.n_classes,
        "pixel_max": ds.pixel_max,
        "class_names": list(ds.class_names),
        "class_counts": {
            "train": [int(c) for c in train_counts],
            "test": [int(c) for c in test_counts],
        },
        "checksums_verified": bool(ds.verified),
        "sha256": dict(ds.sha256),
    }
