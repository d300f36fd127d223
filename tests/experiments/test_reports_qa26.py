"""Regressions of QA round 26 on the experiment reports (digits data: seconds).

1. one-vs-rest figures name the digits a spec trains, weights in digit order; 4. relu-softmax
cost curves say epoch when a point is an epoch of minibatch steps; 8. --quick reports say what
the quick run ran; 11. weight figures have distinct titles and one colour scale.
"""

from pathlib import Path

import numpy as np
import pytest

from mlplab import plots
from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec
from tinyspecs import ovr, relu

OVR = ovr("[7, 3]", lrs="[0.5]", name="ovr-sub", quick=False)

QUICK = """
name = "quick-tiny"
runner = "generic"
protocol = "corrected"
description = "Digits, 16 hidden units, trained for 3 epochs."
[data]
dataset = "digits"
[model]
hidden = [16]
[training]
epochs = 3
batch_size = 32
[quick]
training = { epochs = 1 }
data = { max_train_samples = 300 }
"""


def _capture(monkeypatch) -> dict[str, object]:
    """The figures saved, by file name."""
    figures = {}
    real_save = plots._save

    def save(fig, path):
        figures[Path(path).name] = fig
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    return figures


def _spec(tmp_path: Path, text: str, name: str = "s.toml", quick: bool = False):
    p = tmp_path / name
    p.write_text(text)
    return load_spec(p, quick=quick)


def test_ovr_figures_name_the_trained_digits_in_order(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    out = tmp_path / "o"
    run_experiment(_spec(tmp_path, OVR), out)
    for init in ("uniform01", "zeros"):
        bars = figures[f"ovr_lr0.5_{init}.png"].axes[0]
        assert [t.get_text() for t in bars.get_xticklabels()] == ["3", "7"]  # before: "0", "1"
        fig = figures[f"ovr_weights_lr0.5_{init}.png"]
        panels = [ax for ax in fig.axes if ax.images]
        assert [ax.get_title() for ax in panels] == ["digit 3", "digit 7"]
        assert f"lr 0.5, init {init}" in fig.get_suptitle()  # the two figures are told apart
        assert len({im.get_clim() for ax in panels for im in ax.images}) == 1  # one colour scale
        assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
        for ax, digit in zip(panels, (3, 7)):  # each panel shows its own digit's weights
            folder = next((out / "cells").glob(f"digit={digit}-*"))
            with np.load(folder / "weights.npz") as z:
                column = list(z["inits"]).index(init)
                np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), z["W"][:, column].reshape(8, 8))
    md = (out / "report.md").read_text()
    assert "figures/ovr_weights_lr0.5_zeros.png" in md


@pytest.mark.parametrize("batch_size, xlabel, every", [(32, "epoch", "every 2 epochs"),
                                                       (0, "iteration (full batch: one per epoch)",
                                                        "every 2 iterations")])
def test_cost_curves_name_what_a_point_is(tmp_path, monkeypatch, batch_size, xlabel, every):
    figures = _capture(monkeypatch)
    spec = relu("[0.1]", protocol="corrected", epochs=4, record_epochs="[2, 4]", batch_size=batch_size, cost_every=2)
    run_experiment(_spec(tmp_path, spec), tmp_path / "r")
    ax = figures["cost_corrected.png"].axes[0]
    assert ax.get_xlabel() == xlabel  # before: "iteration" for minibatch runs too
    assert ax.get_title().endswith(every)
    assert [float(x) for x in ax.lines[0].get_xdata()] == [0.0, 2.0, 4.0]  # the epochs recorded
    budgets = figures["budgets_corrected.png"]
    assert budgets.get_suptitle().startswith("relu-tiny, corrected protocol")


def test_quick_report_states_what_the_quick_run_ran(tmp_path):
    out = tmp_path / "q"
    spec = _spec(tmp_path, QUICK, quick=True)
    run_experiment(spec, out)
    md = (out / "report.md").read_text()
    assert "The full run (not this one): Digits, 16 hidden units, trained for 3 epochs." in md
    assert ("This quick run changed: data.max_train_samples: unset → 300; training.epochs: 3 → 1." in md)
    assert "\n\nDigits, 16 hidden units" not in md  # before: the full run's text as this run's
    # a run resumed from its saved spec.toml (which holds the quick values only) states those
    from mlplab.experiments.runner import quick_blocks

    saved = load_spec(out / "spec.toml")
    assert saved.quick and not saved.quick_changes
    text = " ".join(b[1] for b in quick_blocks(saved))
    assert "This quick run's settings (from its resolved spec): training.epochs = 1; " \
           "data.max_train_samples = 300." in text


def test_a_full_run_report_keeps_its_description(tmp_path):
    out = tmp_path / "f"
    run_experiment(_spec(tmp_path, QUICK.replace("epochs = 3", "epochs = 1")), out)
    md = (out / "report.md").read_text()
    assert "\n\nDigits, 16 hidden units, trained for 3 epochs.\n" in md and "quick run" not in md
