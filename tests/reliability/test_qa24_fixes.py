"""QA round 24: file names that are not UTF-8, empty path options, and a $MLPLAB_DATA_DIR that
names nothing. Each is either handled (names written with ``\\xNN`` escapes) or refused with one
line naming the option, exit code 2, no traceback and nothing written."""

import os
import shutil
from pathlib import Path

import pytest

from mlplab.cli import main
from mlplab.data import load_dataset
from mlplab.errors import DataError
from mlplab.io import atomic_write_text, printable

RUN_FF = "run\udcff"  # os.fsdecode(b"run\xff"): how Python hands over a name holding byte 0xff


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _one_clean_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "\udcff" not in err
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished digits run folder (ASCII name; tests copy it to the names they need)."""
    root = tmp_path_factory.mktemp("qa24")
    assert main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--quiet",
                 "--out", str(root / "made")]) == 0
    return root / "made"


@pytest.fixture
def run_ff(tmp_path, trained_run) -> Path:
    """The trained run copied to a folder whose name holds byte 0xff."""
    target = tmp_path / RUN_FF
    try:
        shutil.copytree(trained_run, target)
    except (OSError, UnicodeError):  # pragma: no cover - file systems that only take UTF-8 names
        pytest.skip("this file system refuses names that are not UTF-8")
    return target


# ----------------------------------------------------------------------------- 1. non-UTF-8 names


def test_printable_escapes_undecodable_bytes_and_keeps_the_rest():
    assert printable("run\udcff/é") == "run\\xff/é"
    assert printable(Path("a\udc80b")) == "a\\x80b"
    assert printable("x\ud800") == "x\\ud800"  # a lone surrogate that is no file-name byte


def test_a_text_file_holding_such_a_name_is_written_with_the_escape(tmp_path):
    target = atomic_write_text(tmp_path / "r.md", f"# {RUN_FF}\n")
    assert target.read_text(encoding="utf-8") == "# run\\xff\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temporary file left behind


def test_report_of_a_run_folder_whose_name_is_not_utf8(run_ff, capsys):
    assert main(["report", str(run_ff)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "\udcff" not in out
    assert "run\\xff" in out
    assert "# Run report: run\\xff" in (run_ff / "report.md").read_text(encoding="utf-8")
    assert "<h1>Run report: run\\xff</h1>" in (run_ff / "report.html").read_text(encoding="utf-8")


def test_compare_of_runs_whose_names_are_not_utf8(run_ff, tmp_path, capsys):
    other = tmp_path / "run\udcfe"
    shutil.copytree(run_ff, other)
    out_dir = tmp_path / "cmp\udcff"
    assert main(["compare", str(run_ff), str(other), "--out", str(out_dir)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "\udcff" not in out
    md = (out_dir / "comparison.md").read_text(encoding="utf-8")
    assert "| run\\\\xff |" in md and "| run\\\\xfe |" in md  # Markdown-escaped backslash: two names
    assert (out_dir / "comparison.png").stat().st_size > 0


def test_evaluate_a_model_in_and_into_folders_whose_names_are_not_utf8(run_ff, tmp_path, capsys):
    out_dir = tmp_path / "eval\udcff"
    assert main(["evaluate", str(run_ff / "model.npz"), "--out", str(out_dir)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "\udcff" not in out
    assert "eval\\xff" in out  # "run folder: <path>", wrapped by the terminal width
    assert "# Run report: eval\\xff" in (out_dir / "report.md").read_text(encoding="utf-8")


def test_train_into_a_folder_whose_name_is_not_utf8(tmp_path, capsys):
    out_dir = tmp_path / RUN_FF
    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--quiet",
                 "--out", str(out_dir)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert (out_dir / "metrics.json").is_file()
    assert "# Run report: run\\xff" in (out_dir / "report.md").read_text(encoding="utf-8")


def test_an_error_about_such_a_name_shows_the_escape(tmp_path, capsys):
    assert main(["report", str(tmp_path / "gone\udcff")]) == 2
    assert "gone\\xff: not a run folder" in _one_clean_line(capsys.readouterr().err)


@pytest.mark.parametrize("option", ["--dataset", "--data-dir"])
def test_train_refuses_a_dataset_path_that_config_toml_cannot_record(tmp_path, capsys, monkeypatch, option):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data\udcff"
    folder.mkdir()
    args = ["train", "--epochs", "1", "--quiet", "--out", "out", option, str(folder)]
    if option == "--data-dir":
        args += ["--dataset", "digits"]
    before = _snapshot(tmp_path)
    assert main(args) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert line.startswith(f"mlplab: error: {option} ") and "data\\xff" in line and "not UTF-8" in line
    assert _snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- 2. empty path options

EMPTY_CASES = [
    (["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--out", "{e}"], "'--out' / '-o'"),
    (["train", "--resume", "{e}"], "'--resume'"),
    (["train", "--config", "{e}"], "'--config' / '-c'"),
    (["train", "--dataset", "digits", "--data-dir", "{e}", "--out", "o"], "'--data-dir'"),
    (["evaluate", "{model}", "--out", "{e}"], "'--out' / '-o'"),
    (["evaluate", "{model}", "--out", "o", "--data-dir", "{e}"], "'--data-dir'"),
    (["evaluate", "{e}", "--out", "o"], "'model'"),
    (["predict", "{model}", "{e}"], "'images'"),
    (["report", "{e}"], "'run_dir'"),
    (["compare", "{run}", "--out", "{e}"], "'--out'"),
    (["compare", "{e}"], "'run_dirs'"),
    (["data", "fetch", "digits", "--data-dir", "{e}"], "'--data-dir'"),
    (["data", "info", "digits", "--data-dir", "{e}"], "'--data-dir'"),
    (["data", "show", "digits", "--out", "{e}"], "'--out'"),
    (["data", "show", "digits", "--data-dir", "{e}"], "'--data-dir'"),
    (["experiment", "run", "two-hidden-layers", "--quick", "--out", "{e}"], "'--out'"),
    (["experiment", "run", "--resume", "{e}"], "'--resume'"),
    (["experiment", "run", "two-hidden-layers", "--out", "o", "--data-dir", "{e}"], "'--data-dir'"),
    (["experiment", "run", "{e}", "--out", "o"], "'name'"),
    (["experiment", "show", "{e}"], "'name'"),
]


@pytest.mark.parametrize("empty", ["", " "], ids=["empty", "blank"])
@pytest.mark.parametrize("argv,needle", EMPTY_CASES, ids=[" ".join(c[0][:2]) + " " + c[1] for c in EMPTY_CASES])
def test_an_empty_path_is_refused_not_taken_as_the_current_folder(tmp_path, trained_run, capsys, monkeypatch,
                                                                  argv, needle, empty):
    work = tmp_path / "cwd"
    shutil.copytree(trained_run, work / "run")  # a run folder to compare, and a model to evaluate
    monkeypatch.chdir(work)
    before = _snapshot(work)
    args = [a.format(e=empty, model="run/model.npz", run="run") for a in argv]
    assert main(args) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert f"Invalid value for {needle}: {empty!r} is empty or blank" in line, line
    assert _snapshot(work) == before


# ----------------------------------------------------------------------------- 3. $MLPLAB_DATA_DIR


def test_a_data_dir_setting_naming_nothing_is_an_error_also_for_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=f"^MLPLAB_DATA_DIR {tmp_path / 'typo'}: no such directory$"):
        load_dataset("digits")
    monkeypatch.delenv("MLPLAB_DATA_DIR")
    with pytest.raises(DataError, match="^data dir .*typo: no such directory$"):
        load_dataset("digits", data_dir=tmp_path / "typo")
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="f: not a directory$"):
        load_dataset("digits", data_dir=tmp_path / "f")


def test_a_data_dir_setting_that_exists_or_is_empty_is_fine_for_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path))  # no digits/ in it: digits never reads it
    assert load_dataset("digits").name == "digits"
    monkeypatch.setenv("MLPLAB_DATA_DIR", "")  # set but empty: unset, as for every variable
    assert load_dataset("digits").name == "digits"


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--out", "out"],
    ["data", "info", "digits"],
    ["data", "show", "digits", "--out", "grid.png"],
    ["experiment", "run", "two-hidden-layers", "--quick", "--out", "exp"],
], ids=["train", "data-info", "data-show", "experiment-run"])
def test_commands_refuse_a_data_dir_setting_naming_nothing(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "typo"))
    assert main(argv) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert line == f"mlplab: error: MLPLAB_DATA_DIR {tmp_path / 'typo'}: no such directory"
    assert _snapshot(tmp_path) == {}
    assert os.listdir(tmp_path) == []
