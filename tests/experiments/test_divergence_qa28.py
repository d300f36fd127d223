"""QA28: divergence counted the same way everywhere.

* ovr-logistic trains the ten detectors of a cell stacked: one can diverge while the others
  train on, so its cell finishes. The end-of-run line, the progress lines, summary.json and the
  report's "Cells" tables count those detectors too (before: "2 cells (0 cached)", nothing).
* The PyTorch and scikit-learn reference cells diverge by the rules of mlplab's Trainer, in its
  words: a loss above 1e4 times the first epoch's, or weights too large (their squared norm
  overflows, :meth:`MLP.finite_weights`), not only non-finite ones (before: the same runaway
  learning rate was "diverged" for mlplab and a finished, garbage cell for the others).

Digits data and tiny models: seconds to run."""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.errors import DivergenceError
from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec
from tinyspecs import ovr

OVR = ovr("[0, 1]", lrs="[0.01, 1e300]", quick=False)  # lr 1e300: 2 of each cell's 4 detectors diverge
ERROR = ("DivergenceError: weights became non-finite or too large at epoch 1 (learning rate 1e+300); "
         "try a smaller learning rate")


def _cli(args, capsys):
    rc = main(args)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out, captured.err


# ----------------------------------------------------------------------------- ovr-logistic detectors


def test_diverged_detectors_are_counted_at_the_end_of_the_run_and_in_the_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    spec = tmp_path / "spec.toml"
    spec.write_text(OVR)
    out = tmp_path / "out"
    args = ["experiment", "run", str(spec), "--out", str(out)]
    stdout, stderr = _cli(args, capsys)
    assert "2 cells (0 cached; 4 detectors in 2 cells diverged) in " in stdout
    for d in (0, 1):
        assert re.search(rf"done digit={d} in [0-9.]+ s \(2 of 4 detectors diverged\)", stderr), stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] == []  # the cells finished: their detectors are counted apart
    assert summary["cells_with_diverged_models"] == {"digit=0": {"diverged": 2, "of": 4},
                                                     "digit=1": {"diverged": 2, "of": 4}}
    report = (out / "report.md").read_text()
    for cell in summary["cells"]:
        assert f"| {cell['name']} | run (2 of 4 detectors diverged) |" in report
    assert "## Cells with diverged detectors" in report and "## Diverged cells" not in report
    assert "4 detectors diverged in 2 cells, whose other detectors trained on" in report
    for cell in summary["cells"]:
        assert f"- {cell['name']} ({cell['folder']}): 2 of 4 detectors diverged: {ERROR}" in report

    stdout, _ = _cli(args, capsys)  # from the cache: the same counts
    assert "2 cells (2 cached; 4 detectors in 2 cells diverged) in " in stdout
    assert "| digit=0 | cached (2 of 4 detectors diverged) |" in (out / "report.md").read_text()


def test_diverged_detectors_are_counted_over_seeds(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(OVR)
    summary = run_experiment(load_spec(str(path)), tmp_path / "out", seeds=2)
    assert {g: a.get("n_diverged_models") for g, a in summary["groups"].items()} == {"digit=0": 4, "digit=1": 4}
    assert all(a["n_diverged"] == 0 for a in summary["groups"].values())
    assert len(summary["cells_with_diverged_models"]) == 4
    report = (tmp_path / "out" / "report.md").read_text()
    for d in (0, 1):  # the "Mean ± sd over 2 seeds" table
        assert re.search(rf"\| digit={d} \(4 detectors diverged\) \| [0-9.]+ ± [0-9.]+ \(n=2\) \|", report), report
    assert "8 detectors diverged in 4 cells" in report


def test_the_end_of_run_count_wording():
    from mlplab.experiments.runner import diverged_note
    from mlplab.experiments.sweep import diverged_models

    assert diverged_note({"diverged": [], "cells_with_diverged_models": {}}, "detector") == ""
    assert diverged_note({"diverged": ["a", "b"], "cells_with_diverged_models": {}}) == ", 2 diverged"
    parts = {"c": {"diverged": 2, "of": 4}, "d": {"diverged": 1, "of": 4}}
    assert diverged_note({"diverged": ["a", "b"], "cells_with_diverged_models": parts}, "detector") == \
        ", 2 diverged; 3 detectors in 2 other cells diverged"
    assert diverged_note({"diverged": [], "cells_with_diverged_models": {"c": {"diverged": 1, "of": 4}}},
                         "detector") == "; 1 detector in 1 cell diverged"
    gone = {"status": "diverged", "error": "DivergenceError: x"}
    assert diverged_models({"models": [gone, {"test": {}}, gone]}) == (2, 3)
    assert diverged_models(gone) == (0, 0)  # a diverged cell counts as a cell
    assert diverged_models({"test_accuracy": 0.9}) == (0, 0)


# ----------------------------------------------------------------------------- PyTorch reference cells


def _torch_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)), rng.integers(0, 3, 32)


def test_pytorch_cells_diverge_when_the_loss_explodes():
    pytest.importorskip("torch")
    from mlplab.experiments.protocols.torch_ref import train_torch

    X, y = _torch_data()
    # full batch, lr 1e6: epoch 2's loss is 4.9e9 against epoch 1's 1.13 (finite loss, finite weights)
    with pytest.raises(DivergenceError, match=r"^loss exploded to [0-9.e+]+ at epoch 2 \(learning rate 1e\+06\); "
                                              r"try a smaller learning rate$"):
        train_torch([4, 8, 3], "relu", {"name": "sgd", "lr": 1e6}, 32, 3, 0, X, y, None, None)
    res = train_torch([4, 8, 3], "relu", {"name": "sgd", "lr": 1e6}, 32, 3, 0, X, y, None, None,
                      divergence_factor=None)  # the rule off, as Trainer(divergence_factor=None)
    assert res["history"]["loss"][1] > 1e4 * res["history"]["loss"][0]


def test_pytorch_cells_diverge_when_the_weights_become_too_large():
    pytest.importorskip("torch")
    from mlplab.experiments.protocols.torch_ref import train_torch

    X, y = _torch_data()
    # one full-batch step at lr 1e21: finite float32 weights of ~1e20, whose squared norm overflows
    with pytest.raises(DivergenceError, match=r"^weights became non-finite or too large at epoch 1 "
                                              r"\(learning rate 1e\+21\); try a smaller learning rate$"):
        train_torch([4, 8, 3], "relu", {"name": "sgd", "lr": 1e21}, 32, 1, 0, X, y, None, None)


# ----------------------------------------------------------------------------- scikit-learn cells


def _sklearn_fit(lr: float, epochs: int):
    from mlplab.experiments.protocols.mnist_best import _sklearn

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 3, 64)
    data = SimpleNamespace(X_train=X, y_train=y, X_val=X[:16], y_val=y[:16], X_test=X[16:32], y_test=y[16:32])
    cfg = {"model": {"hidden": [8], "hidden_activation": "relu", "l2": 1e-4},
           "training": {"batch_size": 64, "lr": lr, "seed": 0, "epochs": epochs}}
    return _sklearn(cfg, data)


def test_sklearn_cells_diverge_when_the_loss_explodes():
    # Adam at lr 1e5: epoch 2's loss_ (with its L2 penalty) is 4.4e5 against loss_curve_[0]'s 1.27
    with pytest.raises(DivergenceError, match=r"^loss exploded to [0-9.e+]+ at epoch 2 \(learning rate 100000\); "
                                              r"try a smaller learning rate$"):
        _sklearn_fit(1e5, 2)


def test_sklearn_cells_diverge_when_the_weights_become_too_large():
    # one Adam step at lr 1e160: finite float64 weights of ~1e160, whose squared norm overflows
    with pytest.raises(DivergenceError, match=r"^weights became non-finite or too large at epoch 1 "
                                              r"\(learning rate 1e\+160\); try a smaller learning rate$"):
        _sklearn_fit(1e160, 1)
