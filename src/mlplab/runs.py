"""One training run, start to finish: data, split, scaling, network, training, evaluation,
and a run folder holding everything a report needs.

Run folder layout::

    config.toml        the resolved configuration
    history.csv        per-epoch training/validation loss and accuracy, learning rate, time
    metrics.json       test (and train) metrics, inference timing, training time, and ``data``:
                       which data exactly (dataset name, source, each IDX file's path and
                       SHA-256, or scikit-learn's version for digits; see
                       :func:`mlplab.data.datasets.data_record`)
    model.npz          the trained network (mlplab model file)
    environment.json   library versions, BLAS and its threads, CPU, and ``command``: the
                       command line that wrote the folder, ``{"argv": ["mlplab", "train", ...],
                       "cwd": ...}`` (``null`` when written from the Python API); a run finished
                       by ``train --resume`` lists the invocations it continues in
                       ``earlier_commands`` (oldest first; ``null``: not recorded)
    predictions.npz    test labels and probabilities (float64, the very values metrics.json was
                       computed from: figures/report rebuild without retraining)
    figures/*.png      training curves, confusion matrix, ROC curves, ...
    report.md, report.html
    checkpoint.npz     only while a run is unfinished (interrupted): resume with --resume

Every file is written atomically. The library never prints: progress goes to callbacks.
Folders written before ``data``, ``command`` and ``earlier_commands`` were recorded lack them;
everything that reads a run folder treats them as not recorded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlplab.config import COMMAND_LINE, read_toml, resolve, to_toml
from mlplab.environment import blas_threads, command_line, environment_info
from mlplab.errors import ConfigError, DivergenceError, TrainingInterrupted
from mlplab.io import _json_default, atomic_write_bytes, atomic_write_json, atomic_write_text
from mlplab.network import MLP
from mlplab.serialization import ModelFile, load_model, restore_trainer, save_model
from mlplab.training import Callback, EarlyStopping, Trainer

CHECKPOINT = "checkpoint.npz"


@dataclass
class PreparedData:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray
    test_images: np.ndarray  # raw uint8 test rows, for the mistakes gallery
    scaler: Any
    image_shape: tuple[int, ...]
    class_names: list[str]
    dataset_name: str
    source: str
    split_desc: str
    split: dict[str, Any] = field(default_factory=dict)  # kind, test_fraction, split_seed: for a model file
    #: which data exactly (:func:`mlplab.data.datasets.data_record`): metrics.json's ``data``
    data_record: dict[str, Any] | None = None


def prepare_data(cfg: dict[str, Any], progress: Callable | None = None) -> PreparedData:
    """Load, split and scale the data a config asks for."""
    from mlplab.data import data_record, load_dataset, splits
    from mlplab.data.preprocessing import Scaler

    d = cfg["data"]
    if d["split"] not in splits.SPLIT_KINDS:
        raise ConfigError(f"split {d['split']!r}: expected {', '.join(splits.SPLIT_KINDS)}")
    if d.get("data_dir") and not Path(d["data_dir"]).expanduser().is_dir():  # a typo would silently fall back
        raise ConfigError(f"--data-dir (data.data_dir) {d['data_dir']}: no such directory")
    ds = load_dataset(d["dataset"], data_dir=d.get("data_dir"), progress=progress)
    if d["split"] == "textbook" and len(ds.y_train) + len(ds.y_test) < 20000:
        raise ConfigError(f"split 'textbook' (55,000/5,000/10,000) needs at least 20,000 samples; dataset "
                          f"{ds.name!r} has {len(ds.y_train) + len(ds.y_test)}: use canonical or stratified")
    X_all, y_all = splits.all_samples(ds)
    seed = d["split_seed"]
    tr, te, desc = splits.split_rows(ds, y_all, d["split"], d["test_fraction"], seed)
    # stratified subsets, drawn as experiment cells draw theirs (same seed, same rows)
    train_samples = d.get("max_train_samples") if (d.get("max_train_samples") or 0) < len(tr) else None
    test_samples = d.get("max_test_samples") if (d.get("max_test_samples") or 0) < len(te) else None
    tr = splits.stratified_subset(tr, y_all, train_samples, seed)
    te = splits.stratified_subset(te, y_all, test_samples, seed)
    if train_samples:
        desc += f", training subset of {len(tr)} (seed {seed})"
    if test_samples:
        desc += f", test subset of {len(te)} (seed {seed})"
    Xtr, ytr, Xte, yte = X_all[tr], y_all[tr], X_all[te], y_all[te]
    Xv = yv = None
    if d["validation_fraction"] > 0:
        tr, va = splits.validation_split(ytr, d["validation_fraction"], d["split_seed"])
        Xv, yv, Xtr, ytr = Xtr[va], ytr[va], Xtr[tr], ytr[tr]
        desc += f", validation {len(yv)} taken from training"
    dtype = np.dtype(cfg["model"]["dtype"])
    scaler = Scaler(d["scaling"], pixel_max=ds.pixel_max).fit(Xtr)
    return PreparedData(
        X_train=scaler.transform(Xtr, dtype=dtype), y_train=np.ascontiguousarray(ytr, dtype=np.int64),
        X_val=None if Xv is None else scaler.transform(Xv, dtype=dtype),
        y_val=None if yv is None else np.asarray(yv, dtype=np.int64),
        X_test=scaler.transform(Xte, dtype=dtype), y_test=np.asarray(yte, dtype=np.int64),
        test_images=np.asarray(Xte), scaler=scaler, image_shape=tuple(ds.image_shape),
        class_names=[str(c) for c in ds.class_names], dataset_name=ds.name, source=str(ds.source),
        split_desc=desc,
        split=split_record(d["split"], d["test_fraction"], d["split_seed"], test_samples, train_samples,
                           d["validation_fraction"]),
        data_record=data_record(ds),
    )


def split_record(kind: str, test_fraction: float, seed: int, test_samples: int | None = None,
                 train_samples: int | None = None, validation_fraction: float = 0.0) -> dict[str, Any]:
    """What a model file records about its split, so ``mlplab evaluate`` can rebuild its test and
    training rows: kind, test fraction and seed, the sizes asked of stratified test and training
    subsets if they were taken, and the validation fraction taken out of training."""
    record: dict[str, Any] = {"kind": kind, "test_fraction": float(test_fraction), "split_seed": int(seed)}
    if test_samples:
        record["test_samples"] = int(test_samples)
    if train_samples:
        record["train_samples"] = int(train_samples)
    if validation_fraction:
        record["validation_fraction"] = float(validation_fraction)
    return record


def test_rows_key(record: dict[str, Any]) -> str:
    """What picks the test rows of a split record (see :func:`split_record`), as one string:
    runs with equal keys on one dataset were scored on the same rows (``mlplab compare`` checks)."""
    kind = record["kind"]
    parts = [kind]
    if kind in ("stratified", "sklearn"):
        parts.append(f"test fraction {record['test_fraction']:g}")
    if kind != "canonical" or record.get("test_samples"):
        parts.append(f"seed {record['split_seed']}")
    if record.get("test_samples"):
        parts.append(f"test subset {record['test_samples']}")
    return ", ".join(parts)


def preprocessing_meta(data: PreparedData) -> dict[str, Any]:
    """What a model file records about its inputs (the scaler's arrays go in the npz) and, as
    ``data``, which data exactly it was trained on (``data.data_record``).

    ``ink``: the polarity of the dataset's images, ``"light"`` (light strokes on a dark background,
    as in every bundled dataset) or ``"dark"`` (e.g. a folder of IDX files of dark ink on white),
    measured on its raw test rows, so ``mlplab predict`` makes a user's picture look the same."""
    from mlplab.imageio import dataset_ink
    from mlplab.serialization import preprocessing_record

    return preprocessing_record(data.scaler, dataset=data.dataset_name, image_shape=data.image_shape,
                                split=data.split, ink=dataset_ink(data.test_images, data.image_shape),
                                data=data.data_record)


def training_data_comparison(trained: Any, now: Any) -> dict[str, Any]:
    """Whether an evaluation reads the data its model was trained on: ``trained`` is the model
    file's ``preprocessing.data``, ``now`` the evaluated data's record (both
    :func:`mlplab.data.datasets.data_record`). ``{"same": True/False/None, "text": ...}``:
    ``None`` when the model file records no data (written before it was recorded); the same
    files anywhere (another folder, gzipped or not) are the same data."""
    from mlplab.data.datasets import data_changes, data_identity

    if data_identity(trained) is None or data_identity(now) is None:
        return {"same": None, "text": "the model file does not record the data it was trained on (an older mlplab "
                                      "wrote it, or it was saved without it)"}
    changes = data_changes(trained, now)
    if changes:
        more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
        return {"same": False, "text": f"different data than training: {'; '.join(changes[:3])}{more}"}
    if data_identity(now).get("files"):
        return {"same": True, "text": "same data files as training (every file's SHA-256 matches)"}
    return {"same": True, "text": f"same data as training ({now.get('name')}, scikit-learn "
                                  f"{now.get('sklearn_version')})"}


def build_network(cfg: dict[str, Any], n_features: int, n_classes: int) -> MLP:
    m, t = cfg["model"], cfg["training"]
    return MLP(
        [n_features, *m["hidden"], n_classes],
        hidden_activation=m["hidden_activation"], output_activation=m["output_activation"],
        loss=m["loss"], init=m["init"], init_params=m["init_params"], dropout=m["dropout"],
        l2=m["l2"], dtype=m["dtype"], seed=t["seed"],
    )


def build_trainer(cfg: dict[str, Any], net: MLP, callbacks: list[Callback]) -> Trainer:
    t = cfg["training"]
    opt: dict[str, Any] = {"name": t["optimizer"]}
    ignored = [k for k in ("momentum", "nesterov") if t[k]] if t["optimizer"] != "sgd" else []
    ignored += ["weight_decay"] if t["optimizer"] == "rmsprop" and t["weight_decay"] else []
    for key in ("lr", "momentum", "nesterov", "weight_decay"):
        if key in t["optimizer_params"]:  # two values for one setting: which one trained is unclear
            raise ConfigError(f"training.optimizer_params.{key}: set training.{key} (--{key.replace('_', '-')}) "
                              "instead, not as an optimizer parameter")
    if ignored:  # silently dropping a setting the user gave would train something else than asked
        raise ConfigError(f"training.{ignored[0]} does not apply to optimizer {t['optimizer']!r} "
                          f"(momentum and nesterov are sgd's; weight_decay is sgd's and adam's)")
    if t["optimizer"] == "sgd":
        opt.update(momentum=t["momentum"], nesterov=t["nesterov"], weight_decay=t["weight_decay"])
    elif t["optimizer"] == "adam":
        opt.update(weight_decay=t["weight_decay"])
    opt.update(t["optimizer_params"])  # e.g. {beta2 = 0.99} or {alpha = 0.9}
    sched = {"name": t["schedule"], **t["schedule_params"]}
    cbs = list(callbacks)
    if t["early_stopping_patience"] is not None:
        monitor = "val_loss" if cfg["data"]["validation_fraction"] > 0 else "loss"
        cbs.append(EarlyStopping(monitor=monitor, patience=t["early_stopping_patience"]))
    return Trainer(net, opt, lr=t["lr"], batch_size=t["batch_size"] or None, schedule=sched,
                   seed=t["seed"], train_metrics=t["train_metrics"], callbacks=cbs)


def load_config(config_file: str | Path | None, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    layers = []
    if config_file is not None:
        layers.append((str(config_file), read_toml(config_file)))
    layers.append((COMMAND_LINE, overrides))
    return resolve(*layers)


def recorded_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` as ``config.toml`` records it: a canonical or textbook split (fixed test sets)
    leaves out ``data.test_fraction`` when it is the default, which it ignores, so the file and
    the report do not show it as if it applied; resolving the file gives the default back, so
    ``--resume`` and ``--config`` rebuild the same configuration."""
    from mlplab.config import SCHEMA

    d = cfg["data"]
    if d.get("split") in ("canonical", "textbook") and d.get("test_fraction") == SCHEMA["data"]["test_fraction"][0]:
        return {**cfg, "data": {k: v for k, v in d.items() if k != "test_fraction"}}
    return cfg


def check_out_dir(out: Path, resume: bool = False) -> None:
    """Refuse a run folder that is a file, or (unless resuming) one holding another run: a
    finished one (metrics.json), or an interrupted or failed one (its checkpoint.npz or
    config.toml), which a new run would overwrite and so make impossible to resume."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if resume or not out.is_dir():
        return
    if (out / "metrics.json").exists():
        raise ConfigError(f"--out {out}: already holds a finished run (metrics.json); choose another folder")
    unfinished = [name for name in (CHECKPOINT, "config.toml") if (out / name).exists()]
    if unfinished:
        raise ConfigError(f"--out {out}: holds an unfinished run ({' and '.join(unfinished)}, no metrics.json); "
                          f"continue it with `mlplab train --resume {out}` or choose another --out")


def _absolute_data_paths(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with a folder dataset and ``data_dir`` as absolute paths: ``config.toml`` and the
    model file then name the same data from any working folder (``train --resume RUN`` and
    ``train --config RUN/config.toml`` started elsewhere). Registered names stay names."""
    from mlplab.data.datasets import _resolve

    d = dict(cfg["data"])
    target = _resolve(d["dataset"])
    if isinstance(target, Path):
        d["dataset"] = str(target.absolute())
    if d.get("data_dir"):
        d["data_dir"] = str(Path(d["data_dir"]).expanduser().absolute())
    return {**cfg, "data": d}


def train_run(cfg: dict[str, Any], out: str | Path, *, callbacks: list[Callback] = (),
              progress: Callable | None = None, trainer_hook: Callable[[Trainer], None] | None = None,
              resume: bool = False, report: bool = True) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says and write the run folder ``out``; returns metrics."""
    out = Path(out)
    check_out_dir(out, resume)
    data = prepare_data(cfg, progress=progress)
    cfg = _absolute_data_paths(cfg)
    n_classes = len(data.class_names)
    threads = cfg["training"]["threads"]
    with blas_threads(threads):
        net = build_network(cfg, data.X_train.shape[1], n_classes)
        trainer = build_trainer(cfg, net, list(callbacks))
        trainer.check_monitored(validation=data.X_val is not None)
        ckpt = out / CHECKPOINT
        own_checkpoint = resume  # a checkpoint this run resumed from or wrote: the only one to point at
        earlier: list[Any] | None = []  # the command lines of the invocations this one continues
        if resume:
            if not ckpt.exists():
                raise ConfigError(f"--resume {out}: no {CHECKPOINT} there to resume from")
            saved = load_model(ckpt)
            check_resumable(saved, net, cfg, ckpt)
            check_same_data(saved, data, ckpt, cfg["data"]["dataset"])
            net.set_weights(saved.net.parameters())
            restore_trainer(saved, trainer)
            if trainer.epochs_done > cfg["training"]["epochs"]:
                raise ConfigError(f"{out / 'config.toml'}: training.epochs = {cfg['training']['epochs']}, but "
                                  f"{ckpt} has done {trainer.epochs_done} epochs already")
            earlier = _checkpoint_commands(saved.meta)
        # a checkpoint records every invocation so far (an older checkpoint's: null, not recorded)
        commands = [*(earlier if earlier is not None else [None]), command_line()]
        if trainer_hook is not None:
            trainer_hook(trainer)
        try:
            trainer.validate(data.X_train, data.y_train, cfg["training"]["epochs"])  # before writing
        except ConfigError as exc:  # resumed, the data was fine before: the checkpoint's position does not fit
            if not resume:
                raise
            raise ConfigError(f"{ckpt}: {exc}") from None
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        atomic_write_text(out / "config.toml", to_toml(recorded_config(cfg)))

        def checkpoint() -> None:
            nonlocal own_checkpoint
            save_model(ckpt, net, preprocessing=preprocessing_meta(data), classes=data.class_names,
                       training=cfg, trainer=trainer, extra_meta={"commands": commands})
            own_checkpoint = True

        trainer.callbacks.append(PeriodicCheckpoint(checkpoint, cfg["training"].get("checkpoint_seconds", 30.0)))
        try:
            trainer.fit(data.X_train, data.y_train, cfg["training"]["epochs"], data.X_val, data.y_val)
        except TrainingInterrupted:
            checkpoint()  # exact position inside the epoch: --resume continues bit for bit
            atomic_write_text(out / "history.csv", trainer.history.to_csv())
            raise
        except DivergenceError as exc:
            # the state after a diverged epoch is not worth resuming: keep the last good checkpoint
            atomic_write_text(out / "history.csv", trainer.history.to_csv())
            kept = f"; the last good checkpoint is {ckpt}" if own_checkpoint and ckpt.exists() else ""
            raise DivergenceError(f"{exc}{kept}", exc.epoch) from None
        # epoch wall times, summed: excludes evaluation and survives a resume
        train_time = float(sum(t for t in trainer.history.time_s if t is not None))
        metrics = evaluate_into(out, net, data, cfg, trainer, train_time,
                                environment_extra={"earlier_commands": earlier} if resume else None)
    extra = data.scaler.arrays()
    save_model(out / "model.npz", net, preprocessing=preprocessing_meta(data), classes=data.class_names,
               training=cfg, metrics={"accuracy": metrics["test"]["accuracy"],
                                      "roc_auc_ovr_macro": metrics["test"].get("roc_auc_ovr_macro")},
               trainer=trainer, extra_arrays=extra)
    if ckpt.exists():
        ckpt.unlink()
    if report:
        write_report(out)
    return metrics


def _checkpoint_commands(meta: dict[str, Any]) -> list[Any] | None:
    """The command lines a run's checkpoint records (every invocation that trained it so far,
    oldest first), or ``None`` for a checkpoint written before they were recorded."""
    extra = meta.get("extra")
    commands = extra.get("commands") if isinstance(extra, dict) else None
    if not isinstance(commands, list):
        return None
    return [c if isinstance(c, dict) else None for c in commands]


class PeriodicCheckpoint(Callback):
    """Write a checkpoint at the end of an epoch when ``every_s`` seconds have passed since the
    last one, so a killed process loses at most that much work."""

    def __init__(self, write: Callable[[], None], every_s: float = 30.0):
        self.write, self.every_s = write, float(every_s)
        self._last = time.monotonic()

    def on_epoch_recorded(self, trainer, logs):
        if time.monotonic() - self._last >= self.every_s:
            self.write()
            self._last = time.monotonic()


#: settings config.toml may change before ``--resume`` (none changes what was trained): where the
#: data lives, the BLAS threads, how often checkpoints are written, and the epochs in all
_RESUME_MAY_CHANGE = {("data", "data_dir"), ("training", "threads"), ("training", "checkpoint_seconds"),
                      ("training", "epochs")}


def check_same_data(saved: ModelFile, data: PreparedData, ckpt: Path, dataset: str) -> None:
    """Refuse a checkpoint trained on other data than ``dataset`` holds now: the run would go on
    with data it did not start with. A checkpoint that records no data (older) is not checked."""
    from mlplab.data.datasets import data_changes, data_identity

    trained = saved.preprocessing.get("data")
    changes = data_changes(trained, data.data_record) if data_identity(trained) is not None else []
    if changes:
        more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
        raise ConfigError(f"{ckpt}: was trained on other data than {dataset} holds now "
                          f"({'; '.join(changes[:3])}{more}); start a new run")


def check_resumable(saved: ModelFile, net: MLP, cfg: dict[str, Any], ckpt: Path) -> None:
    """Refuse a checkpoint that does not continue the run ``cfg`` (its folder's config.toml)
    describes: another network (``net`` is config.toml's), or a run recorded with other settings
    (a hand-edited config.toml, a checkpoint copied from another run). Resuming would train a
    mix of the two runs, which neither file would describe."""
    config_toml = ckpt.parent / "config.toml"
    ours, theirs = net.config(), saved.net.config()
    for key in ours:
        if key in theirs and theirs[key] != ours[key]:
            raise ConfigError(f"{ckpt}: its network has {key} {theirs[key]!r}, {config_toml} asks for "
                              f"{ours[key]!r}; resume with the config.toml of its run, or start a new run")
    recorded = json.loads(json.dumps(cfg, default=_json_default))  # as the checkpoint's JSON holds it
    for section, values in (saved.training if isinstance(saved.training, dict) else {}).items():
        for key, value in (values if isinstance(values, dict) else {}).items():
            mine = recorded.get(section, {}).get(key, value)
            if (section, key) not in _RESUME_MAY_CHANGE and value != mine:
                raise ConfigError(f"{ckpt}: was written by a run with {section}.{key} = {value!r}, {config_toml} "
                                  f"has {mine!r}; resume with the config.toml of its run, or start a new run")


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed process left behind (``.name.XXXX.tmp``)."""
    for tmp in folder.glob(".*.tmp"):
        try:
            tmp.unlink()
        except OSError:
            pass


def evaluate_into(out: Path, net: MLP, data: PreparedData, cfg: dict[str, Any], trainer: Trainer | None,
                  train_time: float | None, chunked_auc: dict[str, Any] | None = None,
                  model_file: str | None = None, environment_extra: dict[str, Any] | None = None,
                  training_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure the network on the test data; write metrics.json, history.csv, predictions.npz,
    environment.json. Metrics and inference timing are measured separately. metrics.json
    records ``data.data_record`` as ``data``; environment.json the command line
    (:func:`mlplab.environment.environment_info`) and the fields of ``environment_extra``.

    ``chunked_auc``: report 1's chunk-averaged AUC when the caller computed it on other scores
    (the raw sigmoid outputs); by default it is computed on the predicted probabilities.
    ``model_file``: the saved model an evaluation (no ``trainer``) scored, as the user named it;
    recorded so its report says what was evaluated. ``training_data``: an evaluation's
    :func:`training_data_comparison`, recorded as ``training_data``."""
    from mlplab.metrics import chunked_ovr_auc, classification_metrics
    from mlplab.timing import measure_inference

    proba = net.predict_proba(data.X_test)
    test = classification_metrics(data.y_test, proba, classes=data.class_names)
    train_proba = net.predict_proba(data.X_train)
    train = classification_metrics(data.y_train, train_proba, classes=data.class_names)
    if chunked_auc is None:
        chunked_auc = chunked_ovr_auc(data.y_test, proba, chunk=100)
    inference = measure_inference(net.predict_proba, data.X_test)
    metrics: dict[str, Any] = {
        "dataset": data.dataset_name,
        "source": data.source,
        "split": data.split_desc,
        "test_rows": test_rows_key(data.split) if data.split else None,
        "data": data.data_record,
        "model": net.describe(),
        "n_parameters": net.n_parameters,
        "test": test,
        "train": train,
        "chunked_auc": chunked_auc,
        "inference": inference,
        "training_time_s": train_time,
        "epochs_run": trainer.epochs_done if trainer is not None else None,
    }
    if trainer is not None:
        metrics["stop_reason"] = trainer.stop_reason
        metrics["restored_best_epoch"] = trainer.restored_epoch
        metrics["train_metrics"] = trainer.train_metrics  # how history.csv's training columns were measured
    if model_file is not None:
        metrics["model_file"] = model_file
    if training_data is not None:
        metrics["training_data"] = training_data
    metrics["accuracy"] = test["accuracy"]
    metrics["roc_auc_ovr_macro"] = test.get("roc_auc_ovr_macro")
    out.mkdir(parents=True, exist_ok=True)
    if trainer is not None:
        atomic_write_text(out / "history.csv", trainer.history.to_csv())
    atomic_write_json(out / "environment.json", {**environment_info(), **(environment_extra or {})})
    _write_predictions(out, data, proba, net)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _write_predictions(out: Path, data: PreparedData, proba: np.ndarray, net: MLP) -> None:
    import io

    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != data.y_test)
    conf = proba[wrong, pred[wrong]]
    top = wrong[np.argsort(-conf, kind="stable")[:25]]
    arrays = {
        "y_true": data.y_test.astype(np.int64),
        "proba": np.asarray(proba, dtype=np.float64),  # the values the metrics were computed from
        "class_names": np.array(data.class_names),
        "image_shape": np.array(data.image_shape, dtype=np.int64),
        "mistake_index": top.astype(np.int64),
        "mistake_images": data.test_images[top].astype(np.uint8),
        "first_layer_weights": net.dense_layers[0].W.astype(np.float32),
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(out / "predictions.npz", buf.getvalue())


def write_report(out: Path) -> None:
    """Figures and report of a run folder whose results are written; a failure says they are kept."""
    from mlplab.errors import MlplabError
    from mlplab.report import write_run_report

    try:
        write_run_report(out)  # draws the figures too
    except (OSError, MlplabError) as exc:
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        what = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        raise MlplabError(f"{where}{what}; the results are saved in {out}: fix this, then `mlplab report {out}` "
                          "writes the figures and the report") from None


def resume_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.toml"
    if not path.exists():
        raise ConfigError(f"--resume {run_dir}: no config.toml (not a run folder)")
    return resolve((str(path), read_toml(path)))

