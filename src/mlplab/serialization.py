"""Model files: NumPy ``.npz`` arrays plus JSON metadata. Loading never unpickles.

Layout of the zip archive (``np.savez`` format, every member a plain ``.npy`` array)::

    __meta__.npy          uint8 bytes of a UTF-8 JSON document (see FORMAT below)
    param/0.npy ...       W0, b0, W1, b1, ... in network order
    trainer/<name>.npy    optimizer slots and resume state (optional)
    extra/<name>.npy      preprocessing arrays (e.g. standardisation mean/std)

The metadata holds ``format`` ("mlplab-model"), ``format_version``, the network config
(architecture, activations, loss, dtype, seed), the preprocessing the inputs need, the class
labels, the training config, final metrics, library versions and the trainer state. Every
member's ``.npy`` header is checked against the bytes actually stored before anything is
allocated, so a truncated or lying file is refused cheaply.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.errors import MlplabError, ModelFileError
from mlplab.io import _json_default, atomic_write_bytes
from mlplab.network import MLP

FORMAT = "mlplab-model"
FORMAT_VERSION = 1
_MAX_META_BYTES = 16 * 1024 * 1024
_MAX_MEMBERS = 10_000
# what converting a hand-edited metadata field can raise (int() of a huge float, .get on a
# list, an index past a short list, a numpy RNG state setter given an out-of-range integer)
_FIELD_ERRORS = (MlplabError, KeyError, TypeError, ValueError, OverflowError, AttributeError, IndexError,
                 RecursionError)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed in a model file")


def parse_meta_json(path: Path | str, text: str) -> Any:
    """The metadata document; NaN/Infinity literals and nesting too deep to parse are refused
    with a :class:`ModelFileError` naming ``path``."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: metadata is not valid JSON (nested too deeply)") from None


@dataclass
class ModelFile:
    """What a model file holds, besides the network's weights."""

    net: MLP
    path: Path | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    classes: list[Any] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    trainer_state: dict[str, Any] | None = None
    trainer_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    extra_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


#: the image shape of each known dataset, for a model saved with only the dataset's name
_KNOWN_SHAPES = {"mnist": [28, 28], "fashion-mnist": [28, 28], "digits": [8, 8]}


def preprocessing_record(scaler, *, dataset=None, image_shape=None, split: dict | None = None,
                         ink: str | None = None, data: dict | None = None) -> dict[str, Any]:
    """The ``preprocessing`` record of a model file (what ``mlplab evaluate`` and ``predict``
    read to feed inputs as in training): the scaler (its fitted arrays go in the npz, see
    :meth:`Scaler.arrays`), the image shape, pixel maximum, dataset name, split, ink and
    ``data``, which data exactly the model was trained on (:func:`mlplab.data.datasets.data_record`:
    each file's path and SHA-256, or scikit-learn's version for digits; files written before it
    was recorded lack it), so ``mlplab evaluate`` can say whether it scores the same files.

    ``dataset``: a :class:`~mlplab.data.Dataset` from ``load_dataset`` (name, image shape, ink,
    the canonical split its ``X_train``/``X_test`` are, and its data record), or a dataset's name
    (a known name's image shape is filled in). ``None`` leaves out what only the data could say."""
    from mlplab.data.preprocessing import Scaler

    if scaler is not None and not isinstance(scaler, Scaler):
        raise TypeError(f"scaler must be a mlplab.data.preprocessing.Scaler, got {type(scaler).__name__}")
    record: dict[str, Any] = {}
    if scaler is not None:
        record.update(scaler=scaler.to_dict(include_arrays=False), pixel_max=scaler.pixel_max)
    if dataset is not None and not isinstance(dataset, (str, Path)):  # a Dataset
        from mlplab.config import SCHEMA
        from mlplab.imageio import dataset_ink
        from mlplab.runs import split_record

        image_shape = list(dataset.image_shape) if image_shape is None else image_shape
        if split is None:  # load_dataset's X_train/X_test are the canonical split; the config defaults
            split = split_record("canonical", SCHEMA["data"]["test_fraction"][0],
                                 SCHEMA["data"]["split_seed"][0])
        ink = dataset_ink(dataset.X_test, tuple(dataset.image_shape)) if ink is None else ink
        if data is None:
            from mlplab.data import data_record

            data = data_record(dataset)
        record.setdefault("pixel_max", dataset.pixel_max)
        dataset = dataset.name
    if dataset is not None:
        dataset = str(dataset)
        record["dataset"] = dataset
        if image_shape is None:
            image_shape = _KNOWN_SHAPES.get(dataset.lower())
    if image_shape is not None:
        record["image_shape"] = [int(v) for v in image_shape]
    if split is not None:
        record["split"] = dict(split)
    if ink is not None:
        record["ink"] = ink
    if data is not None:
        record["data"] = dict(data)
    return record


def save_model(path: str | Path, net: MLP, *, preprocessing: dict | None = None,
               classes: list | None = None, training: dict | None = None, metrics: dict | None = None,
               trainer=None, extra_arrays: dict[str, np.ndarray] | None = None,
               extra_meta: dict[str, Any] | None = None, scaler=None, dataset=None) -> Path:
    """Write ``net`` (and optionally a :class:`~mlplab.training.Trainer`'s state) atomically.

    ``scaler`` (the :class:`~mlplab.data.preprocessing.Scaler` the inputs went through) and
    ``dataset`` (the ``Dataset`` trained on, or its name) record the preprocessing, as
    :func:`preprocessing_record` builds it, so ``mlplab evaluate``/``predict`` scale inputs as in
    training (without them the CLI feeds raw pixels). ``preprocessing``: the record itself
    (not with ``scaler``/``dataset``).
    ``extra_meta``: JSON-able data of the caller's own (read back as ``ModelFile.meta["extra"]``),
    e.g. the state of an experiment cell's callbacks in its checkpoint."""
    from mlplab.environment import environment_info

    if scaler is not None or dataset is not None:
        if preprocessing is not None:
            raise ValueError("give either preprocessing= or scaler=/dataset=, not both")
        preprocessing = preprocessing_record(scaler, dataset=dataset)
        if scaler is not None and scaler.arrays():
            extra_arrays = {**scaler.arrays(), **(extra_arrays or {})}
    for i, p in enumerate(net.parameters()):
        if not np.all(np.isfinite(p)):
            raise ModelFileError(f"{path}: refusing to save a network with non-finite weights (parameter {i})")
    arrays: dict[str, np.ndarray] = {f"param/{i}": p for i, p in enumerate(net.parameters())}
    trainer_meta = None
    if trainer is not None:
        trainer_meta, t_arrays = trainer.state_dict()
        arrays.update({f"trainer/{k}": v for k, v in t_arrays.items()})
    for k, v in (extra_arrays or {}).items():
        arrays[f"extra/{k}"] = np.asarray(v)
    env = environment_info()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "network": net.config(),
        "n_parameters": net.n_parameters,
        "preprocessing": preprocessing or {},
        "classes": list(classes) if classes is not None else list(range(max(net.sizes[-1], 2))),
        "training": training or {},
        "metrics": metrics or {},
        "trainer": trainer_meta,
        "versions": env["versions"],
        "extra": extra_meta or {},
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()},
    }
    try:
        meta_bytes = json.dumps(meta, sort_keys=True, allow_nan=False, default=_json_default).encode()
    except ValueError as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc})") from None
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(meta_bytes, dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def _read_members(path: Path) -> dict[str, np.ndarray]:
    """Every array in the archive, each header validated against its stored size first."""
    from mlplab.data.idx import _open  # non-blocking open + fstat: a FIFO is refused, not waited on

    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, expected a model file (.npz)")
    try:
        fh, _, _ = _open(path)
    except MlplabError as exc:  # DataError: "<path>: not a regular file", permission denied, ...
        raise ModelFileError(f"{exc} (expected a model file, .npz)") from None
    with fh:
        return _read_archive(path, fh)


def _read_archive(path: Path, fh) -> dict[str, np.ndarray]:
    try:
        zf = zipfile.ZipFile(fh)
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path}: not an mlplab model file (not a zip/.npz archive, or truncated)") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc.strerror or exc})") from None
    except Exception as exc:  # e.g. a corrupt central directory that zipfile parses badly
        raise ModelFileError(f"{path}: not an mlplab model file ({type(exc).__name__})") from None
    out: dict[str, np.ndarray] = {}
    with zf:
        infos = zf.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise ModelFileError(f"{path}: too many members ({len(infos)}) for a model file")
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise ModelFileError(f"{path}: unexpected member {name!r} (not an .npy array)")
            try:
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    if dtype.hasobject:
                        raise ValueError("object arrays are not allowed (would need pickle)")
                    header_len = fh.tell()
                    count = math.prod(shape)
                    need = count * dtype.itemsize
                    have = info.file_size - header_len
                    if need != have:
                        raise ValueError(f"header declares {need} bytes of data but {have} are stored")
                    data = fh.read(need)
                    if len(data) != need:
                        raise ValueError("data ends early")
                arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
            except Exception as exc:  # untrusted bytes: NumPy's header parser raises SyntaxError too
                detail = " ".join(str(exc).split())[:200]
                raise ModelFileError(f"{path}: member {name!r} is corrupt ({type(exc).__name__}: {detail})") from None
            out[name[:-4]] = arr
    return out


def _check_inputs_and_outputs(path: Path, net: MLP, meta: dict[str, Any], extra: dict[str, np.ndarray]) -> None:
    """What the file says about its inputs (preprocessing) and outputs (class names) fits the
    network, so a hand-edited or mismatched file fails here, naming the file, not mid-command."""
    from mlplab.data.preprocessing import Scaler

    n_in, n_out = net.sizes[0], net.sizes[-1]
    classes = meta.get("classes")
    if classes is not None and not isinstance(classes, list):
        raise ModelFileError(f"{path}: classes must be a list of names")
    if classes and len(classes) != max(n_out, 2):
        raise ModelFileError(f"{path}: {len(classes)} class names for a network with {n_out} outputs")
    prep = meta.get("preprocessing")
    if prep is None:
        return
    if not isinstance(prep, dict):
        raise ModelFileError(f"{path}: preprocessing must be a table")
    shape = prep.get("image_shape")
    if shape is not None:
        if (not isinstance(shape, list) or not shape
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise ModelFileError(f"{path}: preprocessing.image_shape must be a list of positive integers, got {shape!r}")
        if math.prod(shape) != n_in:
            raise ModelFileError(f"{path}: preprocessing.image_shape {shape} has {math.prod(shape)} pixels, "
                                 f"the network takes {n_in} inputs")
    split = prep.get("split")
    if split is not None:  # what `mlplab evaluate` rebuilds its default test set from
        if not isinstance(split, dict):
            raise ModelFileError(f"{path}: preprocessing.split must be a table")
        kind, frac, seed = split.get("kind"), split.get("test_fraction"), split.get("split_seed")
        if split and not (isinstance(kind, str)
                          and isinstance(frac, (int, float)) and not isinstance(frac, bool) and 0 < frac < 1
                          and isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
            raise ModelFileError(f"{path}: preprocessing.split must hold kind, test_fraction (0 to 1) and "
                                 f"split_seed (>= 0), got {split!r}")
        for key in ("test_samples", "train_samples"):
            n = split.get(key)
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
                raise ModelFileError(f"{path}: preprocessing.split.{key} must be a positive integer, got {n!r}")
        vf = split.get("validation_fraction", 0.0)
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 <= vf < 1:
            raise ModelFileError(f"{path}: preprocessing.split.validation_fraction must be in [0, 1), got {vf!r}")
    pixel_max = prep.get("pixel_max")
    if pixel_max is not None and (isinstance(pixel_max, bool) or not isinstance(pixel_max, (int, float))
                                  or not pixel_max > 0):
        raise ModelFileError(f"{path}: preprocessing.pixel_max must be a positive number, got {pixel_max!r}")
    if "scaler" in prep:
        if not isinstance(prep["scaler"], dict):
            raise ModelFileError(f"{path}: preprocessing.scaler must be a table")
        try:
            scaler = Scaler.from_dict(prep["scaler"], extra)
        except _FIELD_ERRORS as exc:
            raise ModelFileError(f"{path}: preprocessing.scaler: {exc}") from None
        if scaler.n_features_ is not None and scaler.n_features_ != n_in:
            raise ModelFileError(f"{path}: the scaler was fit on {scaler.n_features_} features, the network "
                                 f"takes {n_in} inputs")


def load_model(path: str | Path) -> ModelFile:
    """Read and validate a model file; a bad file raises :class:`ModelFileError`."""
    path = Path(path)
    members = _read_members(path)
    raw = members.pop("__meta__", None)
    if raw is None:
        raise ModelFileError(f"{path}: not an mlplab model file (no __meta__ record)")
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > _MAX_META_BYTES:
        raise ModelFileError(f"{path}: metadata record has the wrong type or size")
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc})") from None
    meta = parse_meta_json(path, text)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an mlplab model file (format is {meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer mlplab (format version {version}; this one reads "
                             f"up to {FORMAT_VERSION}); upgrade mlplab")
    cfg = meta.get("network")
    if not isinstance(cfg, dict):
        raise ModelFileError(f"{path}: metadata has no network description")
    try:
        net = MLP.from_config(cfg)
    except _FIELD_ERRORS as exc:  # hand-edited: e.g. sizes = "abc"
        raise ModelFileError(f"{path}: inconsistent network description ({exc})") from None
    params = net.parameters()
    for i, p in enumerate(params):
        a = members.get(f"param/{i}")
        if a is None:
            raise ModelFileError(f"{path}: parameter {i} is missing")
        if a.shape != p.shape:
            raise ModelFileError(f"{path}: parameter {i} has shape {a.shape}, the architecture needs {p.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ModelFileError(f"{path}: parameter {i} has non-float dtype {a.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            p[...] = a
        if not np.all(np.isfinite(p)):  # after the cast: 1e300 is finite in float64, inf in float32
            if np.all(np.isfinite(a)):
                raise ModelFileError(f"{path}: parameter {i} holds values too large for the network's "
                                     f"dtype {net.dtype}")
            raise ModelFileError(f"{path}: parameter {i} holds non-finite values")
    stray = sorted(k for k in members if k.startswith("param/") and k not in {f"param/{i}" for i in range(len(params))})
    if stray:
        raise ModelFileError(f"{path}: more parameter arrays than the architecture has ({', '.join(stray[:5])})")
    trainer_arrays = {k[len("trainer/"):]: v for k, v in members.items() if k.startswith("trainer/")}
    extra = {k[len("extra/"):]: v for k, v in members.items() if k.startswith("extra/")}
    _check_inputs_and_outputs(path, net, meta, extra)
    return ModelFile(
        net=net,
        path=path,
        preprocessing=meta.get("preprocessing") or {},
        classes=meta.get("classes") or [],
        training=meta.get("training") or {},
        metrics=meta.get("metrics") or {},
        trainer_state=meta.get("trainer"),
        trainer_arrays=trainer_arrays,
        extra_arrays=extra,
        meta=meta,
    )


def restore_trainer(model: ModelFile, trainer) -> None:
    """Load a saved trainer state (optimizer, RNGs, history) into ``trainer``."""
    where = f"{model.path}: " if model.path is not None else ""
    if model.trainer_state is None:
        raise ModelFileError(f"{where}model file holds no training state to resume from")
    try:
        trainer.load_state_dict(model.trainer_state, model.trainer_arrays)
    except _FIELD_ERRORS as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"{where}training state in the model file is inconsistent ({detail})") from None
