"""Every plot function writes a non-empty, deterministic PNG under Agg, and never shows."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest

from mlplab import plots
from mlplab.errors import MlplabError
from mlplab.metrics import classification_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
K = 10
NAMES = [str(i) for i in range(K)]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.permutation(np.arange(200) % K)
    logits = rng.normal(size=(200, K))
    logits[np.arange(200), y] += 2
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    return {"rng": rng, "y": y, "p": p, "m": classification_metrics(y, p)}


def _calls(data):
    rng, y, p, m = data["rng"], data["y"], data["p"], data["m"]
    hist = {"epoch": [1, 2, 3], "loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8],
            "val_loss": [1.1, 0.7, None], "val_accuracy": [0.45, 0.65, None]}
    images = rng.integers(0, 256, (200, 64)).astype(np.uint8)
    return {
        "training_curves": lambda path: plots.training_curves(
            hist, path, published={"epoch": [1, 2, 3], "accuracy": [0.85, 0.88, 0.89], "label": "report 1"}),
        "confusion_matrix_heatmap": lambda path: plots.confusion_matrix_heatmap(m["confusion_matrix"], NAMES, path),
        "roc_curves": lambda path: plots.roc_curves(y, p, NAMES, path),
        "per_class_bars": lambda path: plots.per_class_bars(m["classification_report"], NAMES, path),
        "confident_mistakes": lambda path: plots.confident_mistakes(
            images, y, p.argmax(1), p.max(1), path, (8, 8), NAMES, n=25),
        "first_layer_weights": lambda path: plots.first_layer_weights(rng.normal(size=(64, 80)), (8, 8), path),
        "ovr_accuracy_bars": lambda path: plots.ovr_accuracy_bars(
            [88.45, 92.91, 81.85, 80.29, 75.63, 70.46, 82.47, 82.88, 74.14, 72.93],
            [90.83, 94.88, 84.30, 81.11, 75.89, 74.66, 79.71, 81.04, 77.90, 74.45],
            [90.20, 88.65, 89.68, 89.90, 90.18, 91.08, 90.42, 89.72, 90.26, 89.91], path, "lr 0.01"),
        "ovr_weight_images": lambda path: plots.ovr_weight_images(rng.random((10, 784)), (28, 28), path),
        "sweep_accuracy_vs_epochs": lambda path: plots.sweep_accuracy_vs_epochs(
            [{"lr": 0.005, "epochs": 1000, "train": 26.23, "test": 29.63},
             {"lr": 0.005, "epochs": 10000, "train": 76.71, "test": 74.12},
             {"lr": 0.05, "epochs": 1000, "train": -345.39, "test": -344.34}], path, metric_name="score"),
        "cost_curves": lambda path: plots.cost_curves(
            {"1000 epochs": (np.arange(1, 11) * 100, np.linspace(16, 2, 10)),
             "2000 epochs": (np.arange(1, 21) * 100, np.linspace(16, 1, 20))}, path, logy=True),
        "sweep_heatmap": lambda path: plots.sweep_heatmap(
            [[0.2963, 0.559], [-3.4434, None]], ["0.005", "0.05"], [1000, 2000], path, "lr", "epochs"),
        "comparison_bars": lambda path: plots.comparison_bars(
            ["2-hidden", "torch"], {"accuracy": [0.9636, 0.9768], "macro AUC": [0.9967, None]}, path),
    }


def test_every_function_is_covered(data):
    assert set(_calls(data)) == set(plots.__all__)


@pytest.mark.parametrize("name", sorted(plots.__all__))
def test_writes_deterministic_png(name, data, tmp_path):
    fn = _calls(data)[name]
    out = tmp_path / "sub" / f"{name}.png"
    state = data["rng"].bit_generator.state
    returned = fn(out)
    assert returned == out and out.is_file()
    first = out.read_bytes()
    assert first.startswith(PNG_SIGNATURE) and len(first) > 1000
    data["rng"].bit_generator.state = state  # same inputs again
    fn(out)
    assert out.read_bytes() == first
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temporary file


def test_headless_and_no_pyplot_figures():
    assert matplotlib.get_backend().lower() == "agg"
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_confident_mistakes_without_mistakes(tmp_path):
    y = np.arange(4)
    out = plots.confident_mistakes(np.zeros((4, 4)), y, y, np.ones(4), tmp_path / "m.png", (2, 2), list("abcd"))
    assert out.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    "call",
    [
        lambda p: plots.first_layer_weights(np.zeros((10, 3)), (3, 3), p),
        lambda p: plots.confusion_matrix_heatmap([[1, 2], [3, 4]], ["a", "b", "c"], p),
        lambda p: plots.training_curves({"epoch": [1], "loss": [1.0]}, p),
        lambda p: plots.comparison_bars(["a", "b"], {"acc": [1.0]}, p),
        lambda p: plots.sweep_heatmap([[1, 2]], ["r"], ["c"], p, "r", "c"),
        lambda p: plots.per_class_bars({"0": {}}, ["0", "1"], p),
    ],
)
def test_bad_inputs_raise_mlplab_error(call, tmp_path):
    with pytest.raises(MlplabError):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
