"""Fixtures of the evaluation tests: a synthetic run folder written like the training code does."""

from __future__ import annotations

import atexit
import csv
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from mlplab.metrics import classification_metrics
from mlplab.timing import measure_inference

N, K, SIDE = 200, 10, 8


_MADE: dict[tuple[int, bool], Path] = {}  # one folder per kind, copied for each test (~0.5 s each to make)


def make_run(run_dir: Path, seed: int = 0, *, with_val: bool = True) -> Path:
    """Write config.toml, history.csv, metrics.json, environment.json, model.npz, predictions.npz."""
    made = _MADE.get((seed, with_val))
    if made is None or not made.is_dir():
        tmp = tempfile.mkdtemp(prefix="mlplab-run-")
        atexit.register(shutil.rmtree, tmp, True)
        made = _MADE[(seed, with_val)] = _make_run(Path(tmp) / "run", seed, with_val=with_val)
    shutil.copytree(made, run_dir, dirs_exist_ok=True)
    return run_dir


def _make_run(run_dir: Path, seed: int = 0, *, with_val: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    d = SIDE * SIDE
    y = rng.permutation(np.arange(N) % K).astype(np.int64)
    logits = rng.normal(size=(N, K))
    logits[np.arange(N), y] += 2.5
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba = (proba / proba.sum(axis=1, keepdims=True)).astype(np.float32)
    images = rng.integers(0, 256, size=(N, d)).astype(np.uint8)
    pred = proba.argmax(axis=1)
    mistakes = np.flatnonzero(pred != y)[:40]
    W1 = rng.normal(scale=0.1, size=(d, 16)).astype(np.float32)
    names = [str(i) for i in range(K)]

    (run_dir / "config.toml").write_text(
        tomli_w.dumps({"seed": seed, "model": {"sizes": [d, 16, K], "activation": "sigmoid", "loss": "mse"},
                       "training": {"lr": 0.1, "epochs": 5, "batch_size": 20}}),
        encoding="utf-8",
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time_s"])
    for e in range(1, 6):
        val = [f"{0.9 / e:.4f}", f"{0.5 + e / 20:.4f}"] if with_val else ["", ""]
        w.writerow([e, f"{1.0 / e:.4f}", f"{0.5 + e / 15:.4f}", *val, "0.1", f"{0.01 * e:.3f}"])
    (run_dir / "history.csv").write_text(buf.getvalue(), encoding="utf-8")

    W = rng.normal(size=(d, K))
    inference = measure_inference(lambda xb: xb @ W, images.astype(np.float32), repeats=2, max_calls=50)
    metrics = {
        "dataset": "synthetic-8x8",
        "split": "test",
        "model": f"{d}-16-{K} sigmoid/mse",
        "test": classification_metrics(y, proba, names),
        "train": classification_metrics(y[:100], proba[:100], names),
        "inference": inference,
        "training_time_s": 1.25 + seed,
        "epochs_run": 5,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True), encoding="utf-8")
    (run_dir / "environment.json").write_text(json.dumps({
        "versions": {"python": "3.11.0", "numpy": "2.0.0", "mlplab": "0.1.0"},
        "blas": [{"user_api": "blas", "internal_api": "openblas", "num_threads": 4, "version": "0.3.27"}],
        "cpu": {"machine": "x86_64", "processor": None, "logical_cores": 8, "affinity": 8},
        "platform": "Linux-test",
        "thread_env": {"OMP_NUM_THREADS": "1"},
    }), encoding="utf-8")
    np.savez(run_dir / "model.npz", W1=W1)
    np.savez(
        run_dir / "predictions.npz",
        y_true=y,
        proba=proba,
        class_names=np.array(names),
        image_shape=np.array([SIDE, SIDE]),
        mistake_images=images[mistakes],
        mistake_index=mistakes.astype(np.int64),
        first_layer_weights=W1,
    )
    return run_dir


@pytest.fixture
def make_run_folder():
    """The :func:`make_run` factory, for tests that need several or unusual run folders."""
    return make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run-a")


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    return [make_run(tmp_path / "run-a", 0), make_run(tmp_path / "run-b", 1, with_val=False)]
