"""Figures and reports rebuilt from a synthetic run folder: complete, valid, deterministic."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from mlplab.errors import MlplabError
from mlplab.report import (
    FIGURES,
    RunFolderError,
    compare_runs,
    load_run,
    write_comparison,
    write_run_figures,
    write_run_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("# Run report: run-a", "## Summary", "## Inference timing", "## Classification report (test)",
            "## Confusion matrix (test)", "## Figures", "## Configuration", "## Environment")
VOID = {"meta", "img", "br", "hr", "link", "input"}


class TagBalance(HTMLParser):
    """Checks that every non-void tag is closed in order; collects img sources and text."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(html_text: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(html_text)
    parser.close()
    return parser


def test_figures_are_written(run_dir):
    paths = write_run_figures(run_dir)
    assert [p.name for p in paths] == [name for name, _ in FIGURES]  # every figure, in report order
    for p in paths:
        assert p.parent == run_dir / "figures"
        assert p.read_bytes().startswith(PNG_SIGNATURE)


def test_report_has_every_section(run_dir):
    md_path, _ = write_run_report(run_dir)
    md = md_path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in md, section
    for needle in ("Balanced accuracy", "Log loss", "one-vs-rest, macro", "one-vs-one, macro",
                   "one-vs-rest, micro", "one-vs-rest, weighted", "Report-1 chunked AUC",
                   "Majority-class baseline", "whole set", "macro avg", "weighted avg",
                   "synthetic-8x8", "64-16-10 sigmoid/mse", "openblas", 'lr = 0.1'):
        assert needle in md, needle
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"| Accuracy | {metrics['test']['accuracy']:.4f} | {metrics['train']['accuracy']:.4f} |" in md
    for name, _ in FIGURES:
        assert f"](figures/{name})" in md
    assert "/tmp" not in md and str(run_dir) not in md  # relative paths only


def test_html_is_valid_and_self_contained(run_dir):
    _, html_path = write_run_report(run_dir)
    text = html_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parsed = _parse(text)
    assert parsed.doctype.lower() == "doctype html"
    assert parsed.errors == [] and parsed.stack == []
    assert len(parsed.images) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    body = "".join(parsed.text)
    for section in SECTIONS:
        assert section.lstrip("# ") in body


def test_html_escapes_user_text(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["model"] = "<script>alert(1)</script> & co"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    _, html_path = write_run_report(run_dir)
    text = html_path.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in text
    assert _parse(text).errors == []


def test_report_is_byte_identical_twice(run_dir, tmp_path):
    md1, html1 = (p.read_bytes() for p in write_run_report(run_dir))
    pngs1 = {p.name: p.read_bytes() for p in (run_dir / "figures").iterdir()}
    # a copy of the saved files elsewhere gives the same bytes as well
    copy = tmp_path / "copy" / "run-a"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("figures", "report.*"))
    for target in (run_dir, copy):
        md2, html2 = (p.read_bytes() for p in write_run_report(target))
        assert md2 == md1 and html2 == html1
        assert {p.name: p.read_bytes() for p in (target / "figures").iterdir()} == pngs1


def test_optional_files_absent(run_dir):
    for name in ("history.csv", "predictions.npz", "environment.json", "config.toml"):
        (run_dir / name).unlink()
    write_run_report(run_dir)  # an earlier report's figures must go too
    md = (run_dir / "report.md").read_text()
    assert "history.csv, config.toml, environment.json, predictions.npz" in md
    names = sorted(p.name for p in (run_dir / "figures").iterdir())
    assert names == ["confusion_matrix.png", "per_class.png"]
    assert "Report-1 chunked AUC" not in md
    assert "environment.json not found" in md and "config.toml not found" in md


def test_validation_columns_may_be_empty(tmp_path, make_run_folder):
    run = make_run_folder(tmp_path / "noval", with_val=False)
    data = load_run(run)
    assert data.history["val_loss"] == [None] * 5
    assert write_run_figures(run)[0].name == "training_curves.png"


def test_stale_figures_are_removed(run_dir):
    write_run_figures(run_dir)
    with np.load(run_dir / "predictions.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if k not in ("mistake_images", "mistake_index")}
    arrays["image_shape"] = np.array([64])  # not image-shaped: no weight images either
    np.savez(run_dir / "predictions.npz", **arrays)
    names = {p.name for p in write_run_figures(run_dir)}
    assert "confident_mistakes.png" not in names and "first_layer_weights.png" not in names
    assert not (run_dir / "figures" / "confident_mistakes.png").exists()
    assert not (run_dir / "figures" / "first_layer_weights.png").exists()


# ----------------------------------------------------------------------------- broken folders


def test_missing_metrics_json_is_a_clean_error(run_dir):
    (run_dir / "metrics.json").unlink()
    for fn in (write_run_report, write_run_figures, lambda d: compare_runs([d])):
        with pytest.raises(RunFolderError, match="metrics.json"):
            fn(run_dir)


def test_missing_folder(tmp_path):
    with pytest.raises(MlplabError, match="no such directory"):
        write_run_report(tmp_path / "nope")


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("metrics.json", b"{not json", "metrics.json: not valid JSON"),
        ("metrics.json", b"[1, 2]", "metrics.json: expected a JSON object"),
        ("metrics.json", b'{"dataset": "x"}', "metrics.json: lacks the 'test'"),
        ("metrics.json", b"\xff\xfe\x00", "metrics.json: not UTF-8"),
        ("history.csv", b"epoch,loss\n1,0.5\n", "history.csv: header lacks the 'accuracy'"),
        ("history.csv", b"epoch,loss,accuracy\n1,abc,0.5\n", "history.csv: line 2"),
        ("history.csv", b"epoch,loss,accuracy\n1,0.5\n", "history.csv: line 2 has 2 fields"),
        ("history.csv", b"", "history.csv: empty"),
        ("config.toml", b"a = [", "config.toml: not valid TOML"),
        ("environment.json", b"{", "environment.json: not valid JSON"),
        ("predictions.npz", b"PK\x03\x04 truncated", "predictions.npz: not a readable .npz"),
    ],
)
def test_corrupt_files_are_named(run_dir, name, content, fragment):
    (run_dir / name).write_bytes(content)
    with pytest.raises(RunFolderError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        write_run_report(run_dir)


def test_inconsistent_predictions(run_dir):
    with np.load(run_dir / "predictions.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["proba"] = arrays["proba"][:, :5]
    np.savez(run_dir / "predictions.npz", **arrays)
    with pytest.raises(RunFolderError, match="predictions.npz: proba has shape"):
        load_run(run_dir)


def test_pickled_predictions_are_refused(run_dir):
    np.savez(run_dir / "predictions.npz", y_true=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RunFolderError, match="predictions.npz"):
        load_run(run_dir)


# ----------------------------------------------------------------------------- comparison


def test_compare_runs_rows(two_runs):
    rows = compare_runs(two_runs)
    assert [r["run"] for r in rows] == ["run-a", "run-b"]
    expected = {"run", "model", "dataset", "split", "test_rows", "test_n_samples", "accuracy", "roc_auc_ovr_macro", "roc_auc_ovo_macro",
                "balanced_accuracy", "log_loss", "training_time_s", "inference_s_per_sample", "data_sha256"}
    for row, run in zip(rows, two_runs):
        assert set(row) == expected
        m = json.loads((run / "metrics.json").read_text())
        assert row["accuracy"] == m["test"]["accuracy"]
        assert row["roc_auc_ovo_macro"] == m["test"]["roc_auc_ovo_macro"]
        assert row["inference_s_per_sample"] == m["inference"]["all"]["seconds_per_sample"]
    assert rows[1]["training_time_s"] == 2.25


def test_compare_disambiguates_same_names(tmp_path, make_run_folder):
    a, b = make_run_folder(tmp_path / "x" / "run"), make_run_folder(tmp_path / "y" / "run", 1)
    assert [r["run"] for r in compare_runs([a, b])] == [str(a), str(b)]


def test_write_comparison(two_runs, tmp_path):
    md, png = write_comparison(two_runs, tmp_path / "cmp")
    assert md.name == "comparison.md" and png.name == "comparison.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    text = md.read_text()
    assert "| run-a |" in text and "| run-b |" in text and "AUC OvO macro" in text
    assert "](comparison.png)" in text
    again = write_comparison(two_runs, tmp_path / "cmp")
    assert again[0].read_text() == text
