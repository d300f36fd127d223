"""Regressions of QA round 25 on what a run folder records (metrics, predictions, reports)."""

from __future__ import annotations

import json

import numpy as np

from mlplab.metrics import classification_metrics


def _train(tmp_path, *args):
    from mlplab.cli import main

    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--quiet", "--no-report",
                 "--out", str(out), *args])
    assert code in (0, None)
    return out


def test_predictions_hold_the_probabilities_the_metrics_were_computed_from(tmp_path):
    """float64 MSE run: its probabilities are not float32 values, and the metrics recomputed from
    predictions.npz equal metrics.json's exactly."""
    out = _train(tmp_path, "--dtype", "float64", "--loss", "mse", "--output-activation", "sigmoid")
    with np.load(out / "predictions.npz") as z:
        y, p, names = z["y_true"], z["proba"], [str(c) for c in z["class_names"]]
    assert p.dtype == np.float64
    again = classification_metrics(y, p, classes=names)
    saved = json.loads((out / "metrics.json").read_text())["test"]
    for key in ("accuracy", "log_loss", "roc_auc_ovr_macro", "roc_auc_ovr_micro", "roc_auc_ovo_macro"):
        assert again[key] == saved[key], key


def test_markdown_shows_names_as_text():
    """A name with a newline, HTML or line-start syntax stays text in report.md (report.html
    escapes it already): no new heading, no raw HTML, no fence broken out of."""
    from mlplab.report import render_markdown

    name = 'run\n# Owned <img src=x onerror="alert(1)"> & co'
    md = render_markdown([("h1", f"Run {name}"), ("p", name), ("p", "# not a heading"), ("ul", [name]),
                          ("table", ["a", "b"], [[name, "-0.5"]]), ("pre", "```\nx\n```")])
    lines = md.splitlines()
    assert [ln for ln in lines if ln.startswith("#")] == ["# Run run # Owned &lt;img src=x onerror=\"alert(1)\"> &amp; co"]
    assert "<img" not in md
    assert "\\# not a heading" in lines
    assert "| run # Owned &lt;img src=x onerror=\"alert(1)\"> &amp; co | -0.5 |" in lines
    assert "````" in lines  # a fence longer than the text's own


def test_undefined_per_class_scores_are_labelled_not_zero(tmp_path, monkeypatch):
    """A class with no test rows has undefined recall and F1: its bars say n/a."""
    import matplotlib.axes

    from mlplab import plots

    seen: list[str] = []
    real = matplotlib.axes.Axes.annotate
    monkeypatch.setattr(matplotlib.axes.Axes, "annotate", lambda self, text, *a, **k: seen.append(text) or real(self, text, *a, **k))
    report = {"0": {"precision": 0.5, "recall": 1.0, "f1-score": 0.67},
              "1": {"precision": 0.0, "recall": None, "f1-score": None}}
    assert plots.per_class_bars(report, ["0", "1"], tmp_path / "p.png").stat().st_size > 0
    assert seen == ["n/a", "n/a"]


def test_probabilities_of_negative_scores_keep_the_predictions():
    """An MSE network with identity (or tanh) outputs: rows whose scores are all negative must
    not become uniform (class 0); argmax of predict_proba is predict, and metrics agree."""
    from mlplab.network import MLP

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    for out in ("identity", "tanh", "leaky_relu"):
        net = MLP([6, 5, 4], "tanh", out, "mse", init="normal", init_params={"std": 0.5, "mean": -0.5},
                  dtype="float64", seed=1)
        s = net.decision_function(X)
        assert (s.max(axis=1) < 0).any()  # the case that went wrong
        p = net.predict_proba(X)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        np.testing.assert_array_equal(p.argmax(axis=1), net.predict(X))
        y = rng.integers(0, 4, size=200)
        assert classification_metrics(y, p)["accuracy"] == np.mean(net.predict(X) == y)
