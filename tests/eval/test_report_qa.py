"""Regressions of QA findings 7, 9, 10, 11 and 14 on ``mlplab report`` / ``mlplab compare``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalhelpers import capture_figures as _capture_figure
from mlplab import plots
from mlplab.errors import MlplabError
from mlplab.report import (
    RunFolderError,
    compare_runs,
    comparison_warnings,
    load_run,
    write_comparison,
    write_run_report,
)


def _main():
    try:
        import mlplab.cli_data
        import mlplab.cli_train  # noqa: F401
        from mlplab.cli import _register_subcommands, main  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"mlplab.cli.main not usable yet ({exc})")
    return main


def _edit_metrics(run: Path, edit) -> None:
    m = json.loads((run / "metrics.json").read_text())
    edit(m)
    (run / "metrics.json").write_text(json.dumps(m))


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and err.startswith("mlplab: error:"), err
    assert err.count("\n") == 1, err
    return err


# ----------------------------------------------------------------------------- finding 7

MALFORMED = {
    "accuracy_str": (lambda m: m["test"].__setitem__("accuracy", "high"), "test.accuracy"),
    "log_loss_str": (lambda m: m["test"].__setitem__("log_loss", "x"), "test.log_loss"),
    "cm_str": (lambda m: m["test"]["confusion_matrix"][0].__setitem__(0, "a"), r"test.confusion_matrix\[0\]\[0\]"),
    "cm_none": (lambda m: m["test"]["confusion_matrix"][2].__setitem__(1, None), r"test.confusion_matrix\[2\]\[1\]"),
    "cm_negative": (lambda m: m["test"]["confusion_matrix"][0].__setitem__(0, -1), r"test.confusion_matrix\[0\]\[0\]"),
    "classes_str": (lambda m: m["test"].__setitem__("classes", "0123456789"), "test.classes"),
    "classes_dup": (lambda m: m["test"].__setitem__("classes", ["0"] * 10), "test.classes"),
    "report_list": (lambda m: m["test"].__setitem__("classification_report", []), "test.classification_report"),
    "report_entry_str": (lambda m: m["test"]["classification_report"].__setitem__("3", "x"),
                         r"test.classification_report\['3'\]"),
    "report_field_str": (lambda m: m["test"]["classification_report"]["3"].__setitem__("recall", "x"),
                         r"test.classification_report\['3'\]\['recall'\]"),
    "report_missing_class": (lambda m: m["test"]["classification_report"].pop("3"),
                             "test.classification_report lacks classes: 3"),
    "notes_int": (lambda m: m["test"].__setitem__("notes", 5), "test.notes"),
    "notes_str": (lambda m: m["test"].__setitem__("notes", "abc"), "test.notes"),
    "train_notes": (lambda m: m["train"].__setitem__("notes", [1]), "train.notes"),
    "train_accuracy": (lambda m: m["train"].__setitem__("accuracy", [0.5]), "train.accuracy"),
    "n_samples_str": (lambda m: m["test"].__setitem__("n_samples", "many"), "test.n_samples"),
    "inference_value": (lambda m: m["inference"]["all"].__setitem__("median_s", "fast"),
                        r"inference\['all'\].median_s"),
    "inference_entry": (lambda m: m["inference"].__setitem__("all", 3), r"inference\['all'\]"),
    "chunked_incomplete": (lambda m: m.__setitem__("chunked_auc", {"value": 1}), "chunked_auc lacks 'n_used'"),
    "chunked_value": (lambda m: m.__setitem__("chunked_auc", {"value": "x", "n_used": 2, "n_skipped": 0}),
                      "chunked_auc.value"),
    "chunked_list": (lambda m: m.__setitem__("chunked_auc", [1]), "chunked_auc"),
    "training_time_str": (lambda m: m.__setitem__("training_time_s", "long"), "training_time_s"),
    "epochs_float": (lambda m: m.__setitem__("epochs_run", 2.5), "epochs_run"),
    "model_dict": (lambda m: m.__setitem__("model", {"a": 1}), "model"),
    "dataset_list": (lambda m: m.__setitem__("dataset", ["x"]), "dataset"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_metrics_are_named(run_dir, two_runs, case, tmp_path):
    edit, field = MALFORMED[case]
    _edit_metrics(run_dir, edit)
    pattern = r"metrics\.json: " + field
    with pytest.raises(RunFolderError, match=pattern):
        write_run_report(run_dir)
    assert not (run_dir / "figures").exists() and not (run_dir / "report.md").exists()  # nothing half-written
    with pytest.raises(RunFolderError, match=pattern):
        compare_runs([run_dir, two_runs[1]])
    with pytest.raises(RunFolderError, match=pattern):
        write_comparison([run_dir, two_runs[1]], tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("case", ["accuracy_str", "notes_int", "inference_value", "chunked_incomplete", "cm_str"])
def test_malformed_metrics_through_cli(run_dir, two_runs, case, tmp_path, capsys):
    main = _main()
    _edit_metrics(run_dir, MALFORMED[case][0])
    assert main(["report", str(run_dir)]) == 2
    assert "metrics.json" in _one_line_error(capsys)
    assert main(["compare", str(run_dir), str(two_runs[1]), "--out", str(tmp_path / "cmp")]) == 2
    assert "metrics.json" in _one_line_error(capsys)
    assert not (tmp_path / "cmp").exists()


def test_well_formed_variants_still_accepted(run_dir):
    def edit(m):
        m["test"]["accuracy"] = float("nan")  # shown as n/a
        m["test"]["log_loss"] = None
        m["test"]["notes"] = ["a note"]
        m["chunked_auc"] = {"value": 0.9, "n_used": 2, "n_skipped": 0, "chunk": 100}
    _edit_metrics(run_dir, edit)
    md, _ = write_run_report(run_dir)
    text = md.read_text()
    assert "- test: a note" in text and "over 2 chunks" in text


# ----------------------------------------------------------------------------- finding 9


def test_comparison_labels_are_literal(tmp_path, monkeypatch):
    figures = _capture_figure(monkeypatch)
    names = ["_base", "a$x^2$", "x$\\foo$", "run$1"]
    out = plots.comparison_bars(names, {"accuracy": [0.1, 0.2, 0.3, 0.4]}, tmp_path / "c.png", title="t $\\bar$ _x")
    assert out.is_file()
    ax = figures[0].axes[0]
    texts = ax.get_legend().get_texts()
    assert [t.get_text() for t in texts] == names  # "_base" keeps its entry
    assert not any(t.get_parse_math() for t in texts)
    assert not ax.title.get_parse_math()


def test_compare_folder_names_with_math_and_underscore(tmp_path, make_run_folder, monkeypatch):
    figures = _capture_figure(monkeypatch)
    runs = [make_run_folder(tmp_path / "x$\\foo$"), make_run_folder(tmp_path / "_base", 1)]
    _, png = write_comparison(runs, tmp_path / "cmp")
    assert png.is_file()
    assert [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()] == ["x$\\foo$", "_base"]


# ----------------------------------------------------------------------------- finding 10


def _rewrite_predictions(run: Path, **changes) -> None:
    with np.load(run / "predictions.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    np.savez(run / "predictions.npz", **arrays)


def test_foreign_predictions_row_count(run_dir, tmp_path, make_run_folder):
    other = make_run_folder(tmp_path / "other", 3)
    with np.load(other / "predictions.npz") as npz:
        y, p = npz["y_true"][:150], npz["proba"][:150]
    _rewrite_predictions(run_dir, y_true=y, proba=p, mistake_images=np.zeros((0, 64), np.uint8),
                         mistake_index=np.zeros(0, np.int64))
    with pytest.raises(RunFolderError, match=r"predictions\.npz: holds 150 rows but metrics\.json's test set has 200"):
        write_run_report(run_dir)
    assert not (run_dir / "figures").exists() and not (run_dir / "report.md").exists()


def test_foreign_predictions_labels(run_dir):
    with np.load(run_dir / "predictions.npz") as npz:
        y = npz["y_true"].copy()
    y[y == 3] = 4  # same length, other labels
    _rewrite_predictions(run_dir, y_true=y)
    with pytest.raises(RunFolderError, match=r"predictions\.npz: its labels per class differ"):
        load_run(run_dir)


def test_foreign_predictions_same_labels_other_model(run_dir):
    with np.load(run_dir / "predictions.npz") as npz:
        p = npz["proba"]
    _rewrite_predictions(run_dir, proba=np.roll(p, 1, axis=1))  # same rows and labels, other predictions
    with pytest.raises(RunFolderError, match=r"predictions\.npz: its predicted classes differ"):
        load_run(run_dir)


def test_foreign_predictions_through_cli(run_dir, tmp_path, make_run_folder, capsys):
    main = _main()
    other = make_run_folder(tmp_path / "other", 3)
    shutil.copy(other / "predictions.npz", run_dir / "predictions.npz")
    assert main(["report", str(run_dir)]) == 2
    assert "predictions.npz" in _one_line_error(capsys)
    assert not (run_dir / "report.md").exists()


def test_own_predictions_accepted(run_dir):
    assert load_run(run_dir).predictions is not None


def test_float32_ties_are_not_taken_for_foreign_predictions(run_dir):
    """Saturated scores distinct in float64 (the metrics) but tied in the float32 copy stored."""
    with np.load(run_dir / "predictions.npz") as npz:
        y, p = npz["y_true"], npz["proba"].copy()
    rows = np.arange(60)
    other = (y[rows] + 1) % p.shape[1]
    p[rows] = 0.0
    p[rows, other] = 1.0  # float64 scores 1 - 1e-12 (class "other") and 1 - 1e-10 (class y): float32 ties
    p[rows, y[rows]] = 1.0
    first = np.minimum(other, y[rows])  # what argmax picks on the stored ties
    chosen = y[rows]  # what the float64 metrics chose
    m = json.loads((run_dir / "metrics.json").read_text())
    cm = np.array(m["test"]["confusion_matrix"])
    old_pred = np.load(run_dir / "predictions.npz")["proba"].argmax(axis=1)
    np.subtract.at(cm, (y[rows], old_pred[rows]), 1)
    np.add.at(cm, (y[rows], chosen), 1)
    m["test"]["confusion_matrix"] = cm.tolist()
    (run_dir / "metrics.json").write_text(json.dumps(m))
    _rewrite_predictions(run_dir, proba=p)
    assert np.count_nonzero(first != chosen) > 2  # more than the 1% slack alone allows
    assert load_run(run_dir).predictions is not None


# ----------------------------------------------------------------------------- finding 11


def _set(run: Path, dataset: str | None = None, split: str | None = None) -> None:
    def edit(m):
        if dataset is not None:
            m["dataset"] = dataset
        if split is not None:
            m["split"] = split
    _edit_metrics(run, edit)


def test_compare_rows_show_split_and_test_size(two_runs, tmp_path):
    _set(two_runs[1], split="canonical 800/200, training subset of 100")
    rows = compare_runs(two_runs)
    assert [r["split"] for r in rows] == ["test", "canonical 800/200, training subset of 100"]
    assert [r["test_n_samples"] for r in rows] == [200, 200]
    md, _ = write_comparison(two_runs, tmp_path / "cmp")
    text = md.read_text()
    assert "| run | model | dataset | split | test samples | accuracy |" in text
    assert "| synthetic-8x8 | test | 200 |" in text


def test_compare_warns_on_different_datasets(two_runs, tmp_path):
    _set(two_runs[1], dataset="mnist")
    warnings = comparison_warnings(compare_runs(two_runs))
    assert len(warnings) == 1 and "different datasets" in warnings[0] and "mnist" in warnings[0]
    md, _ = write_comparison(two_runs, tmp_path / "cmp")
    assert "Warning: the runs use different datasets" in md.read_text()


def test_compare_warns_on_different_test_sets(two_runs):
    _set(two_runs[0], split="canonical 1348/449")
    _set(two_runs[1], split="stratified 1258/539 of all 1797 (test fraction 0.3, seed 123)")
    warnings = comparison_warnings(compare_runs(two_runs))
    assert len(warnings) == 1 and "different test sets" in warnings[0]


def test_compare_no_warning_when_only_training_differs(two_runs):
    _set(two_runs[0], split="canonical 60000/10000")
    _set(two_runs[1], split="canonical 60000/10000, training subset of 5000, validation 500 taken from training")
    assert comparison_warnings(compare_runs(two_runs)) == []


def test_compare_cli_warns_on_stderr(two_runs, tmp_path, capsys):
    main = _main()
    _set(two_runs[1], dataset="mnist")
    assert main(["compare", *map(str, two_runs), "--out", str(tmp_path / "cmp")]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("mlplab: warning:") and "different datasets" in lines[0]
    assert "test samples" in captured.out and "split" in captured.out
    capsys.readouterr()
    _set(two_runs[1], dataset="synthetic-8x8")
    assert main(["compare", *map(str, two_runs), "--out", str(tmp_path / "cmp2")]) == 0
    assert "warning" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- finding 14


def test_file_given_as_run_folder(run_dir, capsys):
    with pytest.raises(RunFolderError, match=r"metrics\.json: not a run folder \(not a directory\)"):
        write_run_report(run_dir / "metrics.json")
    with pytest.raises(RunFolderError, match="not a directory"):
        compare_runs([run_dir / "metrics.json"])
    main = _main()
    assert main(["report", str(run_dir / "metrics.json")]) == 2
    assert "not a directory" in _one_line_error(capsys)


@pytest.mark.parametrize("content", [b"junk\n", b"", np.lib.format.MAGIC_PREFIX + b"\x01\x00"])
def test_junk_predictions_file(run_dir, content):
    (run_dir / "predictions.npz").write_bytes(content)
    with pytest.raises(RunFolderError, match=r"predictions\.npz: not a predictions file") as info:
        load_run(run_dir)
    assert "pickle" not in str(info.value) and "unsafely" not in str(info.value)


def test_npy_saved_as_predictions(run_dir):
    with open(run_dir / "predictions.npz", "wb") as fh:
        np.save(fh, np.arange(5))
    with pytest.raises(RunFolderError, match=r"predictions\.npz: not a predictions file"):
        load_run(run_dir)


def test_object_arrays_in_predictions(run_dir):
    np.savez(run_dir / "predictions.npz", y_true=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RunFolderError, match=r"predictions\.npz: not a predictions file") as info:
        load_run(run_dir)
    assert "unsafely" not in str(info.value)


def test_compare_out_is_a_file(two_runs, tmp_path, capsys):
    main = _main()
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["compare", *map(str, two_runs), "--out", str(afile)]) == 2
    err = _one_line_error(capsys)
    assert f"--out {afile}: is a file" in err
    assert main(["compare", *map(str, two_runs), "--out", str(afile / "sub")]) == 2
    assert "--out" in _one_line_error(capsys)
    assert afile.read_text() == "x"


def test_write_comparison_out_is_a_file(two_runs, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(MlplabError, match="is a file, not a folder"):
        write_comparison(two_runs, afile)
    (tmp_path / "cmp" / "comparison.md").mkdir(parents=True)
    with pytest.raises(MlplabError, match="comparison.md: is a folder"):
        write_comparison(two_runs, tmp_path / "cmp")
    assert not (tmp_path / "cmp" / "comparison.png").exists()


def test_report_dot_uses_folder_name(run_dir, monkeypatch):
    monkeypatch.chdir(run_dir)
    write_run_report(".")
    assert (run_dir / "report.md").read_text().startswith("# Run report: run-a\n")
    assert "<title>Run report: run-a</title>" in (run_dir / "report.html").read_text()
    monkeypatch.chdir(run_dir / "figures")
    write_run_report("..")
    assert (run_dir / "report.md").read_text().startswith("# Run report: run-a\n")


def test_compare_dot_uses_folder_name(two_runs, monkeypatch):
    monkeypatch.chdir(two_runs[0])
    assert [r["run"] for r in compare_runs([".", two_runs[1]])] == ["run-a", "run-b"]
