"""Helpers shared by the experiment runners: data for a cell, run folders, report parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.config import to_toml
from mlplab.errors import ConfigError
from mlplab.experiments.shapes import INT, NUMBER, Either, ListOf, MapOf, Maybe, Record
from mlplab.io import atomic_write_json, atomic_write_text
from mlplab.runs import PreparedData


@dataclass
class ReportParts:
    """What a runner contributes to the experiment report.

    ``comparison`` is the FIRST table: ``(header, rows)`` with published, reproduced and
    corrected-protocol numbers side by side. ``blocks`` use :mod:`mlplab.report`'s block
    tuples (``("h2", text)``, ``("p", text)``, ``("table", header, rows)``, ``("img", caption,
    relative path)``, ``("pre", text)``, ``("ul", items)``).
    """

    comparison: tuple[list[str], list[list[str]]]
    blocks: list[tuple] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    #: what a cell's ``test_accuracy`` is, as the report's "Cells" and "Mean ± sd" tables label it
    cell_accuracy_label: str = "test accuracy (%)"


# ----------------------------------------------------------------------------- data


#: the datasets loaded in this process, by (dataset, data dir) as cells ask, latest last: a
#: serial sweep's cells and a pool worker's share them (see :func:`forget_changed`)
_LOADED: dict[tuple[str, str | None], Any] = {}
_KEEP = 2


def dataset(name: str, data_dir: str | None):
    """The dataset a cell reads, loaded once per process (the two latest requests are kept).
    The running cell is told what it read (:func:`mlplab.experiments.sweep.note_data`): its
    cell.json records it, and the cell is trained again once that data changes."""
    from mlplab.data import data_record, load_dataset
    from mlplab.experiments.sweep import note_data

    key = (name, data_dir)
    ds = _LOADED.pop(key, None)
    if ds is None:
        ds = load_dataset(name, data_dir=data_dir)
    _LOADED[key] = ds
    while len(_LOADED) > _KEEP:
        del _LOADED[next(iter(_LOADED))]
    note_data(name, data_dir, data_record(ds))
    return ds


def forget_changed(data_now) -> None:
    """Drop the datasets this process holds whose files no longer hold the data they were loaded
    from (``data_now(dataset, data_dir)``: the current
    :func:`~mlplab.data.datasets.data_identity`, or an exception when it cannot be read), so a
    sweep run again in the same process (the Python API) never trains on data that changed."""
    from mlplab.data import data_record
    from mlplab.data.datasets import data_changes

    for key, ds in list(_LOADED.items()):
        now = data_now(str(key[0]), None if key[1] is None else str(key[1]))
        if isinstance(now, BaseException) or data_changes(data_record(ds), now):
            del _LOADED[key]


def split_indices(cfg: dict[str, Any]) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """``(ds, X_all, y_all, train_idx, test_idx, description)``; indices into all_samples."""
    from mlplab.data import splits

    d, s = cfg["data"], cfg["split"]
    ds = dataset(d["dataset"], d.get("data_dir"))
    X_all, y_all = splits.all_samples(ds)
    tr, te, desc = splits.split_rows(ds, y_all, s["kind"], s.get("test_fraction", 0.3), s["seed"])
    return ds, X_all, y_all, np.asarray(tr), np.asarray(te), desc


def _subset(idx: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    from mlplab.data import splits

    return splits.stratified_subset(idx, y, n, seed)


def prepare(cfg: dict[str, Any]) -> PreparedData:
    """The cell's data as :class:`mlplab.runs.PreparedData` (train order kept as the split gives it)."""
    from mlplab.data import data_record, splits
    from mlplab.data.preprocessing import Scaler

    ds, X_all, y_all, tr, te, desc = split_indices(cfg)
    d = cfg["data"]
    n_split_train, n_split_test = len(tr), len(te)
    tr = _subset(tr, y_all, d.get("max_train_samples"), cfg["split"]["seed"])
    te = _subset(te, y_all, d.get("max_test_samples"), cfg["split"]["seed"])
    if d.get("max_train_samples") or d.get("max_test_samples"):
        desc += f", subsets {len(tr)}/{len(te)}"
    n_train = len(tr)  # before the validation rows are taken out
    Xv = yv = None
    vf = cfg["split"].get("validation_fraction", 0.0)
    if vf:
        a, b = splits.validation_split(y_all[tr], vf, cfg["split"]["seed"])
        tr, va = tr[a], tr[b]
        Xv, yv = X_all[va], y_all[va]
        desc += f", validation {len(va)} taken from training"
    dtype = np.dtype(cfg["preprocessing"]["dtype"])
    scaler = Scaler(cfg["preprocessing"]["scaling"], pixel_max=ds.pixel_max).fit(X_all[tr])
    return PreparedData(
        X_train=scaler.transform(X_all[tr], dtype=dtype), y_train=np.ascontiguousarray(y_all[tr], dtype=np.int64),
        X_val=None if Xv is None else scaler.transform(Xv, dtype=dtype),
        y_val=None if yv is None else np.asarray(yv, dtype=np.int64),
        X_test=scaler.transform(X_all[te], dtype=dtype), y_test=np.asarray(y_all[te], dtype=np.int64),
        test_images=np.asarray(X_all[te]), scaler=scaler, image_shape=tuple(ds.image_shape),
        class_names=[str(c) for c in ds.class_names], dataset_name=ds.name, source=str(ds.source),
        split_desc=desc, split=_split_record(cfg, d.get("max_test_samples") if len(te) < n_split_test else None,
                                                 d.get("max_train_samples") if n_train < n_split_train else None),
        data_record=data_record(ds),
    )


def _split_record(cfg: dict[str, Any], test_samples: int | None, train_samples: int | None) -> dict[str, Any]:
    """The split as ``mlplab evaluate`` rebuilds it (the model file records it), with the sizes
    asked of stratified test and training subsets, if the cell took them (the same calls then draw
    the same rows), and the validation fraction taken out of training."""
    from mlplab.runs import split_record

    s = cfg["split"]
    return split_record(s["kind"], s.get("test_fraction", 0.3), s["seed"], test_samples, train_samples,
                        s.get("validation_fraction", 0.0))


# ----------------------------------------------------------------------------- networks


_SPLIT_TRAIN_SIZE = {"canonical": 60000, "sklearn": 49000, "stratified": 49000, "textbook": 55000}


def estimated_cost(cfg: dict[str, Any], factor: float = 1.0) -> float:
    """Relative work of a training cell (samples x multiply-adds per sample x epochs; float64
    counts double), so sweeps can start the longest jobs first. Only the order matters."""
    n = cfg["data"].get("max_train_samples") or _SPLIT_TRAIN_SIZE.get(cfg["split"].get("kind"), 50000)
    sizes = [784, *cfg["model"].get("hidden", []), 10]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    width = 2.0 if cfg["preprocessing"].get("dtype") == "float64" else 1.0
    return float(factor * width * n * macs * cfg["training"].get("epochs", 1))


def build_net(cfg: dict[str, Any], n_features: int, n_classes: int):
    from mlplab.network import MLP

    m = cfg["model"]
    return MLP([n_features, *m["hidden"], n_classes], hidden_activation=m["hidden_activation"],
               output_activation=m["output_activation"], loss=m["loss"], init=m["init"],
               init_params=m["init_params"], dropout=m["dropout"], l2=m["l2"],
               dtype=cfg["preprocessing"]["dtype"], seed=cfg["training"]["seed"],
               shared_bias=m["shared_bias"])


def build_trainer(cfg: dict[str, Any], net, callbacks=(), batch_order=None, train_metrics="running",
                  divergence_factor: float | None = 1e4):
    from mlplab.training import Trainer

    t = cfg["training"]
    opt = {"name": t["optimizer"], **t["optimizer_params"]}
    return Trainer(net, opt, lr=t["lr"], batch_size=t["batch_size"] or None,
                   schedule={"name": t["schedule"], **t["schedule_params"]}, seed=t["seed"],
                   drop_last=t["drop_last"], batch_order=batch_order, train_metrics=train_metrics,
                   divergence_factor=divergence_factor, callbacks=list(callbacks))


def finish_run(out: Path, net, data: PreparedData, cfg: dict[str, Any], trainer, train_time: float,
               report: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a run folder exactly as :func:`mlplab.runs.train_run` does (config.toml,
    history.csv, metrics.json, model.npz, environment.json, predictions.npz, figures, report)."""
    from mlplab.runs import evaluate_into, preprocessing_meta
    from mlplab.serialization import save_model

    atomic_write_text(out / "config.toml", to_toml(_tomlable(cfg)))
    chunked = (extra or {}).get("chunked_auc")
    metrics = evaluate_into(out, net, data, cfg, trainer, train_time, chunked_auc=chunked)
    if extra:
        metrics.update(extra)
        atomic_write_json(out / "metrics.json", metrics)
    save_model(out / "model.npz", net, preprocessing=preprocessing_meta(data), classes=data.class_names,
               training=_tomlable(cfg), metrics={"accuracy": metrics["test"]["accuracy"],
                                                 "roc_auc_ovr_macro": metrics["test"].get("roc_auc_ovr_macro")},
               trainer=trainer, extra_arrays=data.scaler.arrays())
    if report:
        from mlplab.report import write_run_report

        write_run_report(out)
    return metrics


def _tomlable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _tomlable(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_tomlable(v) for v in obj if v is not None]
    return obj


def write_config(out: Path, cfg: dict[str, Any]) -> None:
    atomic_write_text(out / "config.toml", to_toml(_tomlable(cfg)))


#: a classification report as the two-hidden report reads it: per class (and average) a table of
#: precision, recall and f1-score (null when undefined), next to single numbers (``accuracy``)
_CLASS_ROW = Record({"precision?": Maybe(NUMBER), "recall?": Maybe(NUMBER), "f1-score?": Maybe(NUMBER)})
CLASSIFICATION_REPORT = MapOf(Either(_CLASS_ROW, Maybe(NUMBER)))
#: confusion-matrix counts, rows = true class (the two-hidden report reads row 0)
CONFUSION_MATRIX = ListOf(ListOf(INT, min_len=1), min_len=1)

#: what :func:`metric_summary` returns (the shape a cached result is checked against, see
#: :mod:`mlplab.experiments.shapes`), and the metrics some cells add that the two-hidden report
#: reads of any cell when present (``chunked_auc``, ``classification_report``)
METRICS = Record({
    "test_accuracy": NUMBER,
    "train_accuracy?": Maybe(NUMBER),
    "test_auc_ovr_macro?": Maybe(NUMBER),
    "test_auc_ovo_macro?": Maybe(NUMBER),
    "test_balanced_accuracy?": Maybe(NUMBER),
    "training_time_s?": Maybe(NUMBER),
    "inference_s_all?": Maybe(NUMBER),
    "epochs_run?": Maybe(INT),
    "chunked_auc?": Maybe(NUMBER),
    "classification_report?": CLASSIFICATION_REPORT,
})


def metric_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The flat numbers a cell returns (mean ± sd over seeds works on these)."""
    test, train = metrics["test"], metrics.get("train") or {}
    inf = metrics.get("inference", {}).get("all", {})
    return {
        "test_accuracy": test["accuracy"],
        "train_accuracy": train.get("accuracy"),
        "test_auc_ovr_macro": test.get("roc_auc_ovr_macro"),
        "test_auc_ovo_macro": test.get("roc_auc_ovo_macro"),
        "test_balanced_accuracy": test.get("balanced_accuracy"),
        "training_time_s": metrics.get("training_time_s"),
        "inference_s_all": inf.get("median_s"),
        "epochs_run": metrics.get("epochs_run"),
    }


# ----------------------------------------------------------------------------- formatting


def pct(x: Any, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    try:
        return f"{100 * float(x):.{digits}f}"
    except (TypeError, ValueError):
        return str(x)


def num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    return f"{float(x):.{digits}f}"


def pm(stats: dict[str, Any] | None, scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± sd`` of a :func:`mlplab.experiments.sweep.mean_sd` entry."""
    if not stats:
        return "n/a"
    if stats["n"] <= 1:
        return f"{scale * stats['mean']:.{digits}f}"
    return f"{scale * stats['mean']:.{digits}f} ± {scale * stats['sd']:.{digits}f} (n={stats['n']})"


def pm_seeds(stats: dict[str, Any] | None, n_diverged: int, n: int, scale: float = 100.0, digits: int = 2) -> str:
    """:func:`pm` of the seeds that trained (``stats``, a :func:`mlplab.experiments.sweep.mean_sd`
    entry, skips the diverged ones) of ``n`` seeds, ``n_diverged`` of which diverged: "diverged"
    when every one did, else followed by "(k of n diverged)" when some did."""
    if n_diverged and n_diverged >= n:
        return "diverged"
    text = pm(stats, scale, digits)
    return f"{text} ({n_diverged} of {n} diverged)" if n_diverged else text


def pair(a: str, b: str) -> str:
    """``a / b`` (e.g. train / test) of one model; one "diverged" when both are (the model diverged)."""
    return a if a == b == "diverged" else f"{a} / {b}"


def diverged_label(name: str, n_diverged: int, n: int) -> str:
    """A row's ``name`` with how many of its ``n`` seeds diverged: "(diverged)" for all of them."""
    if not n_diverged:
        return name
    return f"{name} (diverged)" if n_diverged >= n else f"{name} ({n_diverged} of {n} diverged)"


def need(cond: bool, origin: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{origin}: {message}")
