"""The report runners finish an experiment some of whose cells diverged (a learning rate too
large): the run exits 0, the tables say "diverged" without numbers, the figures leave the cell
out, the report says which cells diverged and why, and the cells that trained are reported and
compared with the published numbers as usual (digits data: seconds)."""

import json

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec
from tinyspecs import TWO_HIDDEN, ovr, relu

HUGE = "1e30"  # float32: one step overflows the weights' squared norm, DivergenceError at epoch 1


def _run(tmp_path, capsys, text, *args):
    """``mlplab experiment run`` of the spec ``text``: (summary, report.md, the run's folder)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    rc = main(["experiment", "run", str(spec), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 0, err
    return json.loads((out / "summary.json").read_text()), (out / "report.md").read_text(), out


def _row(summary, first: str) -> list[str]:
    """The comparison table's row whose first column is ``first``."""
    return next(r for r in summary["comparison"]["rows"] if r[0] == first)


def _says_why(summary, report, names):
    """summary.json and the report name every diverged cell, with its error."""
    assert sorted(summary["diverged"]) == sorted(names)
    assert "## Diverged cells" in report
    for name in names:
        error = summary["diverged_errors"][name]
        assert error.startswith("DivergenceError: ") and "try a smaller learning rate" in error
        assert f"{name} (" in report and error in report


# ----------------------------------------------------------------------------- two-hidden-layers


def test_two_hidden_report_with_a_diverged_model2(tmp_path, capsys):
    text = TWO_HIDDEN.replace('models = ["two-hidden"]', f'models = ["two-hidden", "model2-mlplab"]\nmodel2_lr = {HUGE}')
    text += '[report.published]\ncurve = "50.00/49.00 60.00/59.00"\naccuracy = { "two-hidden" = 97.5 }\n'
    summary, report, out = _run(tmp_path, capsys, text)
    _says_why(summary, report, ["model2-mlplab"])
    row = _row(summary, "model2-mlplab")
    assert row[2] == "diverged" and row[5:8] == ["diverged"] * 3 and row[9] == "diverged"
    two = _row(summary, "2-hidden: 64-8-8-10")  # trained: its numbers, beside the published one
    assert two[1] == "97.50" and float(two[2]) > 0 and float(two[3]) > 0 and float(two[5]) > 0
    assert summary["curve_match"]["epochs_compared"] == 2  # the replay is compared with the published curve
    assert (out / "figures" / "two_hidden_curves.png").is_file()
    assert (out / "figures" / "comparison.png").is_file()
    assert "Comparison of the models (test set) (model2-mlplab diverged: left out)" in report
    assert "Every model2-mlplab cell diverged, so there is no classification report" in report


def test_two_hidden_report_when_the_replay_diverged(tmp_path, capsys):
    text = TWO_HIDDEN.replace("lr = 0.1\n", f"lr = {HUGE}\n").replace('models = ["two-hidden"]',
                                                                     'models = ["two-hidden", "model2-mlplab"]')
    text += '[report.published]\ncurve = "50.00/49.00 60.00/59.00"\naccuracy = { "model2-mlplab" = 97.5 }\n'
    summary, report, out = _run(tmp_path, capsys, text)
    _says_why(summary, report, ["two-hidden/as-published", "two-hidden/corrected"])
    assert _row(summary, "two-hidden")[1:4] == ["n/a", "diverged", "diverged"]
    model2 = next(r for r in summary["comparison"]["rows"] if r[0].startswith("Model 2 (mlplab)"))
    assert model2[1] == "97.50" and float(model2[2]) > 0
    # the part the published curve needs diverged: the report says so instead of a figure
    assert summary["curve_match"]["diverged"] == summary["diverged_errors"]["two-hidden/as-published"]
    assert "The 2-hidden as-published replay diverged (DivergenceError" in report
    assert not (out / "figures" / "two_hidden_curves.png").exists()
    assert (out / "figures" / "comparison.png").is_file()


# ----------------------------------------------------------------------------- ovr-logistic


def test_ovr_report_with_a_diverging_learning_rate(tmp_path, capsys):
    text = ovr("[0, 1]", lrs="[0.01, 1e300]", quick=False)
    text += '[report.published]\n"train_lr0.01" = [88.45, 92.91]\n"test_lr0.01" = [90.83, 94.88]\n'
    summary, report, out = _run(tmp_path, capsys, text)
    assert summary["diverged"] == []  # the cells (one per digit) trained: 2 of their 4 detectors diverged
    gone = summary["diverged_models"]
    assert sorted((m["digit"], m["lr"], m["init"]) for m in gone) == \
        [(d, 1e300, i) for d in (0, 1) for i in ("uniform01", "zeros")]
    assert all(m["error"].startswith("DivergenceError: weights became non-finite or too large at epoch 1 "
                                     "(learning rate 1e+300)") for m in gone)
    assert "### Diverged detectors" in report and f"digit 0, lr 1e+300, init zeros: {gone[0]['error']}" in report
    for d, published in ((0, "88.45 / 90.83"), (1, "92.91 / 94.88")):  # lr 0.01 trained: compared as usual
        row = _row(summary, str(d))
        assert row[1] == published and "diverged" not in " ".join(row)
        train, test = map(float, row[2].split(" / "))
        assert 0 < train <= 100 and 0 < test <= 100
    claims = {(c[0], c[1]): c for c in summary["claims"]}
    assert claims[("1e+300", "zeros")][2:] == ["diverged"] * 5 + ["0, 1"]
    assert claims[("0.01", "zeros")][-1] == "none" and claims[("0.01", "zeros")][4].endswith(")")
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"ovr_lr0.01_uniform01.png", "ovr_lr0.01_zeros.png", "ovr_weights_lr0.01_zeros.png"} <= figures
    assert not any("1e+300" in f for f in figures)
    assert "lr 1e+300, init zeros: the detector of every digit diverged" in report
    for cell in summary["cells"]:  # no made-up numbers: a diverged detector has none
        models = cell["result"]["models"]
        assert all(set(m) == {"digit", "lr", "init", "status", "error"} for m in models if m["lr"] == 1e300)
        assert cell["result"]["test_accuracy"] == np.mean([m["test"]["accuracy"] for m in models if m["lr"] == 0.01])
        with np.load(out / cell["folder"] / "weights.npz") as z:
            assert np.isfinite(z["W"]).all()  # its last finite weights
        history = (out / cell["folder"] / "history.csv").read_text().splitlines()
        assert history[2].endswith(",,")  # no cost after the divergence (its two columns are the last)


# ----------------------------------------------------------------------------- relu-softmax

RELU = relu(f"[0.1, {HUGE}]", epochs=2, record_epochs="[1, 2]",
            published='"lr0.1" = { "1" = [-200.0, -201.0], "2" = [-190.5, -191.5] }')


def test_relu_softmax_report_with_a_diverging_learning_rate(tmp_path, capsys):
    summary, report, out = _run(tmp_path, capsys, RELU)
    _says_why(summary, report, ["as-published/lr=1e+30", "corrected/lr=1e+30"])
    rows = {(r[0], r[1]): r for r in summary["comparison"]["rows"]}
    assert set(rows) == {("0.1", "1"), ("0.1", "2"), ("1e+30", "1"), ("1e+30", "2")}
    assert rows[("1e+30", "2")][3:] == ["diverged"] * 3
    trained = rows[("0.1", "2")]  # beside its published score
    assert trained[2] == "-190.50 / -191.50" and "diverged" not in " ".join(trained)
    score_train, score_test = map(float, trained[3].split(" / "))
    assert score_train < 100 and score_test < 100
    assert "| corrected | 1e+30 | diverged | diverged | diverged |" in report
    for name in ("budgets_as-published", "cost_as-published", "budgets_corrected", "cost_corrected"):
        assert (out / "figures" / f"{name}.png").is_file()
    assert "corrected: cost curves (lr 1e+30 diverged: left out)" in report


def test_relu_softmax_report_over_seeds_when_every_cell_diverged(tmp_path, capsys):
    text = relu(f"[{HUGE}]", protocol="corrected", epochs=2, record_epochs="[1, 2]")
    summary, report, out = _run(tmp_path, capsys, text, "--seeds", "2")
    assert len(summary["diverged"]) == 2
    assert summary["groups"]["corrected/lr=1e+30"]["n_diverged"] == 2
    assert [r[3:] for r in summary["comparison"]["rows"]] == [["not run", "not run", "diverged"]] * 2
    assert "| corrected/lr=1e+30 (diverged) | n/a |" in report  # the mean ± sd table
    assert "corrected: the cell of every learning rate (1e+30) diverged, so there are no figures" in report
    assert not list((out / "figures").iterdir())
    again = run_experiment(load_spec(tmp_path / "spec.toml"), out, seeds=2)  # the diverged cells are cached
    assert all(c["cached"] for c in again["cells"]) and again["diverged"] == summary["diverged"]


# ----------------------------------------------------------------------------- mnist-best

MNIST_BEST = """
name = "best-tiny"
runner = "mnist-best"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
validation_fraction = 0.1
[model]
init = "he"
[training]
seed = 0
[options]
recipes = {recipes}
frameworks = {frameworks}
fast = {{ hidden = [8], hidden_activation = "relu", optimizer = "adam", lr = 0.01, batch_size = 64, epochs = 2 }}
best = {{ hidden = [8], hidden_activation = "relu", optimizer = "adam", lr = 1e30, batch_size = 64, epochs = 2 }}
targets = {{ fast = 0.3, best = 0.5 }}
"""


def test_mnist_best_report_with_a_diverging_recipe(tmp_path, capsys):
    text = MNIST_BEST.format(recipes='["fast", "best"]', frameworks='["mlplab", "sklearn"]')
    summary, report, out = _run(tmp_path, capsys, text)
    _says_why(summary, report, ["best/mlplab", "best/sklearn"])
    rows = summary["comparison"]["rows"]
    assert [r[3:5] + r[6:] for r in rows if r[0] == "best"] == [["diverged", "diverged", "no (diverged)"]] * 2
    for r in rows[:2]:  # the fast recipe trained
        assert r[0] == "fast" and 30 < float(r[3]) <= 100 and r[6] == "yes"
    assert (out / "figures" / "accuracy_vs_seconds.png").is_file()
    assert "(best/mlplab, best/sklearn diverged: left out)" in report


def test_mnist_best_report_when_every_cell_diverged(tmp_path, capsys):
    summary, report, out = _run(tmp_path, capsys, MNIST_BEST.format(recipes='["best"]', frameworks='["mlplab"]'))
    _says_why(summary, report, ["best/mlplab"])
    assert "Every cell diverged (see the diverged cells below), so there is no figure" in report
    assert not (out / "figures" / "accuracy_vs_seconds.png").exists()


def test_pytorch_training_that_diverges_raises_divergence_error():
    pytest.importorskip("torch")
    from mlplab.errors import DivergenceError
    from mlplab.experiments.protocols.torch_ref import train_torch

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(32, 4)), rng.integers(0, 3, 32)
    with pytest.raises(DivergenceError, match=r"non-finite at epoch 1 \(learning rate 1e\+30\)"):
        train_torch([4, 8, 3], "relu", {"name": "sgd", "lr": 1e30}, 8, 2, 0, X, y, None, None)


# ----------------------------------------------------------------------------- the shared wording


def test_values_over_seeds_skip_and_count_the_diverged_ones():
    from mlplab.experiments.protocols.common import diverged_label, pm_seeds

    stats = {"mean": 0.9, "sd": 0.01, "n": 2}
    assert pm_seeds(stats, 0, 2) == "90.00 ± 1.00 (n=2)"
    assert pm_seeds(stats, 1, 3) == "90.00 ± 1.00 (n=2) (1 of 3 diverged)"
    assert pm_seeds(None, 2, 2) == "diverged"
    assert diverged_label("lr=1", 0, 3) == "lr=1"
    assert diverged_label("lr=1", 1, 3) == "lr=1 (1 of 3 diverged)"
    assert diverged_label("lr=1", 3, 3) == "lr=1 (diverged)"
