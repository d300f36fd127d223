"""Regressions of QA round 26 (figures, reports, picture prediction; audit /tmp/qa6).

Figures are checked through their matplotlib artists (``plots._save`` captured): tick texts,
titles, legend extents against the bars, colour limits, colour bars.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from evalhelpers import capture_figures as _capture
from evalhelpers import seven as _seven
from mlplab import plots
from mlplab.errors import ConfigError
from mlplab.imageio import image_to_input
from mlplab.metrics import classification_metrics


def _legend_clear_of_data(fig, ax) -> None:
    """The axes' legend overlaps no bar and no text drawn in the axes, and lies within the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = ax.get_legend()
    assert legend is not None
    box = legend.get_window_extent(renderer)
    bars = [p for p in ax.patches if p.get_height() != 0]
    assert bars
    for other in [a.get_window_extent(renderer) for a in bars + [t for t in ax.texts if t.get_text()]]:
        assert not box.overlaps(other), (box, other)
    assert not box.overlaps(ax.get_window_extent())  # outside the data area altogether
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)  # not cut off


# ---------------------------------------------------------------- 1. one-vs-rest labels are the digits


def test_ovr_figures_label_the_digits_they_trained(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    plots.ovr_accuracy_bars([0.8, 0.9], [0.85, 0.95], [0.9, 0.9], tmp_path / "a.png", digits=[3, 7])
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "7"]  # before: "0", "1"
    plots.ovr_weight_images(np.random.default_rng(0).normal(size=(2, 784)), (28, 28), tmp_path / "w.png",
                            digits=[3, 7])
    titles = [a.get_title() for a in figures[1].axes if a.get_title()]
    assert titles == ["digit 3", "digit 7"]


# ---------------------------------------------------------------- 2. legends never hide bars


def test_per_class_legend_hides_no_bar_or_na_label(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    y = np.repeat(np.arange(10), 5)
    pred = y.copy()
    pred[y == 9] = 0  # class 9 never predicted: its precision is undefined ("n/a")
    pred[y == 8] = np.array([8, 0, 0, 0, 0])  # class 8: low recall and F1 (short bars)
    proba = np.eye(10)[pred]
    report = classification_metrics(y, proba)["classification_report"]
    plots.per_class_bars(report, [str(i) for i in range(10)], tmp_path / "p.png")
    fig = figures[0]
    ax = fig.axes[0]
    assert any(t.get_text() == "n/a" for t in ax.texts)
    _legend_clear_of_data(fig, ax)


def test_ovr_and_comparison_legends_hide_no_bar(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    plots.ovr_accuracy_bars([0.5] * 10, [0.1] * 10, [0.9] * 10, tmp_path / "o.png")
    plots.comparison_bars(["run-a (mnist, 2000 test rows)", "run-b (digits, 449 test rows)"],
                          {"accuracy": [0.9, 0.05], "AUC": [0.99, None]}, tmp_path / "c.png")
    plots.sweep_accuracy_vs_epochs([{"lr": 0.1, "epochs": 5, "train": 3.0, "test": 2.0},
                                    {"lr": 0.1, "epochs": 10, "train": 80.0, "test": 70.0}], tmp_path / "s.png")
    for fig in figures:
        ax = next(a for a in fig.axes if a.get_legend() is not None)
        _legend_clear_of_data(fig, ax)


# ---------------------------------------------------------------- 3. no empty training curves


def _set_history(run: Path, val: bool, train: bool) -> None:
    lines = ["epoch,loss,accuracy,val_loss,val_accuracy,lr,time_s"]
    for e in range(1, 4):
        tr = f"{1 / e:.3f},{0.5 + e / 10:.3f}" if train else ","
        va = f"{0.9 / e:.3f},{0.4 + e / 10:.3f}" if val else ","
        lines.append(f"{e},{tr},{va},0.1,0.01")
    (run / "history.csv").write_text("\n".join(lines) + "\n")


def test_no_training_curves_without_recorded_values(run_dir):
    from mlplab.report import write_run_report

    (run_dir / "figures").mkdir()
    (run_dir / "figures" / "training_curves.png").write_bytes(b"stale")
    _set_history(run_dir, val=False, train=False)  # train_metrics = "none", no validation data
    write_run_report(run_dir)
    assert not (run_dir / "figures" / "training_curves.png").exists()  # before: two empty panels
    md = (run_dir / "report.md").read_text()
    assert "### Training curves\n\nNot drawn: history.csv records no per-epoch loss or accuracy" in md
    assert "figures/training_curves.png" not in md and "figures/training_curves.png" not in (
        run_dir / "report.html").read_text()


def test_curves_list_only_the_series_recorded(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    hist = {"epoch": [1, 2, 3], "loss": [None] * 3, "accuracy": [None] * 3,
            "val_loss": [1.0, 0.8, 0.7], "val_accuracy": [0.5, 0.6, 0.7]}
    plots.training_curves(hist, tmp_path / "t.png")
    for ax in figures[0].axes:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels and all(label.startswith("validation") for label in labels), labels  # before: + "train ..."


# ---------------------------------------------------------------- 5. early stopping's restored epoch


def test_report_says_which_epoch_the_weights_come_from(run_dir, monkeypatch):
    from mlplab.report import write_run_report

    figures = _capture(monkeypatch)
    m = json.loads((run_dir / "metrics.json").read_text())
    m.update(epochs_run=5, restored_best_epoch=3,
             stop_reason="early stopping: val_loss did not improve for 2 epochs (best 0.3 at epoch 3)")
    (run_dir / "metrics.json").write_text(json.dumps(m))
    write_run_report(run_dir)
    md = (run_dir / "report.md").read_text()
    intro = md.split("\n\n")[1].splitlines()
    i = intro.index("- Epochs run: 5")
    assert intro[i + 1].startswith("- Weights restored to epoch 3 (the metrics below are of these weights); "
                                   "early stopping: val_loss did not improve")
    curves = figures[0]
    for ax in curves.axes:
        marks = [ln for ln in ax.lines if list(ln.get_xdata()) == [3, 3]]
        assert len(marks) == 1 and marks[0].get_label() == "weights restored (epoch 3)"


def test_weights_of_the_last_epoch_are_not_called_restored(run_dir):
    from mlplab.report import write_run_report

    m = json.loads((run_dir / "metrics.json").read_text())
    m.update(epochs_run=5, restored_best_epoch=5, stop_reason=None)
    (run_dir / "metrics.json").write_text(json.dumps(m))
    write_run_report(run_dir)
    assert "restored" not in (run_dir / "report.md").read_text()


# ---------------------------------------------------------------- 9. what the curves show


@pytest.mark.parametrize("how, note", [("running", "running mean over the epoch's minibatches"),
                                       ("full", "measured after the epoch")])
def test_curve_legend_says_how_train_values_were_measured_and_axis_names_the_loss(run_dir, monkeypatch, how, note):
    from mlplab.report import write_run_figures

    figures = _capture(monkeypatch)
    m = json.loads((run_dir / "metrics.json").read_text())  # model "64-16-10 sigmoid/mse"
    m["train_metrics"] = how
    (run_dir / "metrics.json").write_text(json.dumps(m))
    write_run_figures(run_dir)
    loss_ax, acc_ax = figures[0].axes
    assert loss_ax.get_ylabel() == "loss (MSE)"  # before: "loss"
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()][0] == f"train loss ({note})"
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()][0] == f"train accuracy ({note})"


def test_loss_names():
    from mlplab.report import _loss_name

    assert _loss_name("784-64-10 relu/softmax cross_entropy") == "cross-entropy"
    assert _loss_name("784-32-10 sigmoid/sigmoid binary_cross_entropy") == "BCE"
    assert _loss_name("784-1 sigmoid/sigmoid bce") == "BCE"
    assert _loss_name(None) == "" and _loss_name("64-8-10 relu/softmax no_such_loss") == ""


# ---------------------------------------------------------------- 10. the evaluate report


def test_evaluate_report_names_the_model_file(tmp_path):
    from mlplab.cli import main

    run, ev = tmp_path / "run", tmp_path / "eval"
    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--quiet", "--no-report",
                 "--out", str(run)]) == 0
    assert main(["evaluate", str(run / "model.npz"), "--out", str(ev)]) == 0
    assert json.loads((ev / "metrics.json").read_text())["model_file"] == str(run / "model.npz")
    md = (ev / "report.md").read_text()
    assert f"- Model file evaluated: {run / 'model.npz'} (an evaluation, not a training run)" in md
    assert "n/a s" not in md and "Training time" not in md and "Epochs run" not in md


def test_training_time_never_reads_na_seconds(run_dir):
    from mlplab.report import write_run_report

    m = json.loads((run_dir / "metrics.json").read_text())
    m["training_time_s"] = None
    (run_dir / "metrics.json").write_text(json.dumps(m))
    write_run_report(run_dir)
    md = (run_dir / "report.md").read_text()
    assert "n/a s" not in md and "- Training time: not recorded" in md


# ---------------------------------------------------------------- 11. weight images, shared scales, tables


def test_ovr_weight_images_share_one_symmetric_scale_with_a_colour_bar(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    w = np.stack([np.full(784, 0.5), np.linspace(-2.0, 1.0, 784)])
    plots.ovr_weight_images(w, (28, 28), tmp_path / "w.png")
    fig = figures[0]
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 2 and {im.get_clim() for im in images} == {(-2.0, 2.0)}  # before: each its own
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "weight"
    plots.ovr_weight_images(w, (28, 28), tmp_path / "w.png", title="lr 0.01, init zeros")
    assert figures[1].get_suptitle() == "lr 0.01, init zeros"


def test_learning_rate_panels_share_their_y_range(tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    results = [{"lr": 0.05, "epochs": 10, "train": 85.0, "test": 80.0},
               {"lr": 0.005, "epochs": 10, "train": 35.0, "test": 30.0}]
    plots.sweep_accuracy_vs_epochs(results, tmp_path / "s.png")
    a, b = [ax for ax in figures[0].axes if ax.patches]
    assert a.get_ylim() == b.get_ylim()  # before: 0-89 and 0-37
    plots.sweep_accuracy_vs_epochs(results, tmp_path / "s.png", title="relu-softmax, corrected")
    assert figures[1].get_suptitle() == "relu-softmax, corrected"


def test_markdown_tables_align_text_left_and_numbers_right():
    from mlplab.report import render_markdown, render_html

    blocks = [("table", ["run", "model", "accuracy", "score", "note"],
               [["a", "784-64-10 relu/softmax cross_entropy", "0.9010", "88.45 / 90.83", "n/a"],
                ["b", "64-8-10 sigmoid/mse", "n/a", "-12.3 ± 0.4 (n=3)", "not run"]])]
    assert render_markdown(blocks).splitlines()[1] == "|:---|:---|---:|---:|:---|"  # before: all but 1st ---:
    html = render_html(blocks, "t", Path("."))
    assert '<td class="t">784-64-10 relu/softmax cross_entropy</td><td>0.9010</td>' in html


# ---------------------------------------------------------------- 6. shaded pages, 7. thin strokes


def _page(tmp_path: Path, name: str, light: np.ndarray, ink_level: float = 40.0, digit: bool = True) -> Path:
    """A dark '7' (ink ``ink_level``) on a 224x224 page lit as ``light`` (a row of 224 values or a
    224x224 array), as a phone photographs a page under uneven light."""
    ink = np.asarray(Image.fromarray(_seven()).resize((224, 224), Image.BILINEAR), np.float64) / 255
    ink = ink if digit else np.zeros_like(ink)
    light = np.broadcast_to(light, (224, 224))
    p = tmp_path / name
    Image.fromarray((ink * ink_level + (1 - ink) * light).round().astype(np.uint8)).save(p)
    return p


@pytest.mark.parametrize("darkest", [230, 200, 120])
def test_a_shaded_page_reads_like_a_flat_one(tmp_path, darkest):
    flat = image_to_input(_page(tmp_path, "flat.png", np.full(224, 255.0)), (28, 28), 255)
    shaded = _page(tmp_path, "shaded.png", np.linspace(255, darkest, 224))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = image_to_input(shaded, (28, 28), 255)
    # measured: max difference 1/255 (before: correlation 0.82 / 0.46 / 0.51, the page's grey
    # half taken for ink and framed with the digit)
    assert np.abs(out - flat).max() <= 2
    assert not caught


def test_a_vignetted_page_and_light_ink_on_a_shaded_board(tmp_path):
    flat = image_to_input(_page(tmp_path, "flat.png", np.full(224, 255.0)), (28, 28), 255)
    r = np.hypot(*np.meshgrid(np.linspace(-1, 1, 224), np.linspace(-1, 1, 224))) / np.sqrt(2)
    vignette = _page(tmp_path, "v.png", 255 - 140 * r ** 2, ink_level=0.0)
    assert np.corrcoef(image_to_input(vignette, (28, 28), 255), flat)[0, 1] > 0.97
    # light ink on a board lit unevenly: the board's lighter side is subtracted, not framed as ink
    # (measured: correlation 0.85, the ink fainter where the board is lighter; before: 0.48)
    chalk = _page(tmp_path, "chalk.png", np.linspace(10, 110, 224), ink_level=230.0)
    assert np.corrcoef(image_to_input(chalk, (28, 28), 255), flat)[0, 1] > 0.8


def test_an_uneven_background_alone_is_no_digit(tmp_path):
    blank = _page(tmp_path, "blank.png", np.linspace(255, 200, 224), digit=False)
    with pytest.raises(ConfigError, match="blank.png: no digit found"):  # before: read as a digit
        image_to_input(blank, (28, 28), 255)


def test_a_sharp_shadow_is_warned_about_in_one_line(tmp_path):
    shadow = _page(tmp_path, "shadow.png", np.where(np.arange(224) < 90, 120.0, 255.0))
    flat = _page(tmp_path, "flat.png", np.full(224, 255.0))
    with warnings.catch_warnings(record=True) as caught:  # by default: a warning (a PictureWarning)
        warnings.simplefilter("always")
        image_to_input(shadow, (28, 28), 255)
        image_to_input(flat, (28, 28), 255)  # a clear picture: none
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and msgs[0].startswith(f"{shadow}: ambiguous picture: what reads as ink covers")
    assert "\n" not in msgs[0] and type(caught[0].message).__name__ == "PictureWarning"
    got: list[str] = []  # or to the caller's function, as predict prints it
    image_to_input(shadow, (28, 28), 255, warn=got.append)
    assert got == msgs


def _thin_seven(tmp_path: Path, width: int) -> Path:
    im = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(im).line([(100, 60), (300, 60), (170, 340)], fill=0, width=width)
    p = tmp_path / f"thin{width}.png"
    im.save(p)
    return p


def test_thin_strokes_reach_the_full_range_like_mnist_digits(tmp_path):
    thin = _thin_seven(tmp_path, 3)
    row = image_to_input(thin, (28, 28), 255)
    assert row.max() == 255  # measured before: 86 (MNIST digits peak at 254-255)
    assert image_to_input(thin, (8, 8), 16).max() == 16
    np.testing.assert_allclose(image_to_input(thin, (28, 28), 255, ink="dark"), 255 - row, atol=1e-9)
    # Fashion-MNIST items keep their own brightness
    assert image_to_input(thin, (28, 28), 255, dataset="fashion-mnist").max() < 200


# ---------------------------------------------------------------- 12. predict keeps going past a bad picture


@pytest.fixture
def mnist_shaped_model(tmp_path):
    from mlplab.network import MLP
    from mlplab.serialization import save_model

    path = tmp_path / "m.npz"
    save_model(path, MLP([784, 8, 10], "relu", "softmax", "cross_entropy", init="he", seed=0),
               preprocessing={"scaler": {"kind": "unit", "pixel_max": 255}, "image_shape": [28, 28],
                              "pixel_max": 255, "dataset": "mnist"})
    return path


def test_predict_prints_the_good_pictures_and_one_line_per_bad_one(tmp_path, capsys, mnist_shaped_model):
    from mlplab.cli import main

    good = _page(tmp_path, "good.png", np.full(224, 255.0))
    Image.new("L", (50, 50), 255).save(tmp_path / "white.png")
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    shaded = _page(tmp_path, "shaded.png", np.linspace(255, 120, 224))
    capsys.readouterr()
    args = [str(p) for p in (good, tmp_path / "white.png", tmp_path / "missing.png", shaded, tmp_path / "junk.png")]
    assert main(["predict", str(mnist_shaped_model), *args]) == 2
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert [line.split(":")[0] for line in out] == [str(good), str(shaded)]  # before: nothing printed
    err = captured.err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("mlplab: error: ") for line in err)
    assert "white.png: no digit found" in err[0] and "missing.png: no such picture file" in err[1]
    assert "junk.png: not a readable picture" in err[2]
    assert "Traceback" not in captured.err


def test_predict_warns_about_an_ambiguous_picture_in_one_line(tmp_path, capsys, mnist_shaped_model):
    from mlplab.cli import main

    shadow = _page(tmp_path, "shadow.png", np.where(np.arange(224) < 90, 120.0, 255.0))
    capsys.readouterr()
    assert main(["predict", str(mnist_shaped_model), str(shadow)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{shadow}: ")
    assert captured.err.startswith(f"mlplab: warning: {shadow}: ambiguous picture")
    assert len(captured.err.strip().splitlines()) == 1


def test_predict_help_states_the_exit_code(capsys):
    from mlplab.cli import main

    assert main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit code 2 if any picture cannot be read" in text and "the others are still predicted" in text
