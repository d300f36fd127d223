"""Run and experiment folders record the command line that wrote them (environment.json's
``command``, summary.json's ``command``) and which data exactly they used (metrics.json's
``data``: dataset, source, each file's path and SHA-256); folders written before they were
recorded still report, compare, evaluate and resume."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.training import Callback

TRAIN = ["train", "--dataset", "digits", "--hidden", "8", "--epochs", "3", "--batch-size", "64", "--quiet"]


def _json(path):
    return json.loads(Path(path).read_text())


def _sha256sums(folder: Path) -> dict[str, str]:
    """``SHA256SUMS`` of a data folder: file name -> hash (of the decompressed IDX bytes)."""
    pairs = (line.split() for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip())
    return {name: sha for sha, name in pairs}


def test_cli_train_records_argv_cwd_and_digits_identity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*TRAIN, "--no-report", "--out", "run"]
    assert main(args) == 0
    env = _json(tmp_path / "run" / "environment.json")
    assert env["command"] == {"argv": ["mlplab", *args], "cwd": str(tmp_path)}
    assert "earlier_commands" not in env  # not a resumed run
    import sklearn

    data = _json(tmp_path / "run" / "metrics.json")["data"]
    assert data["name"] == "digits" and data["sklearn_version"] == sklearn.__version__
    assert "scikit-learn" in data["source"]
    from mlplab.environment import command_line

    assert command_line() is None  # the command's record ends with it: no stale argv for later library calls


def test_library_runs_record_no_command_line(tmp_path):
    from mlplab.runs import load_config, train_run

    cfg = load_config(None, {"data": {"dataset": "digits"}, "model": {"hidden": [8]}, "training": {"epochs": 1}})
    train_run(cfg, tmp_path / "lib", report=False)
    env = _json(tmp_path / "lib" / "environment.json")
    assert "command" in env and env["command"] is None  # not pytest's argv


def test_mnist_run_records_the_verified_sha256s(tmp_path, mnist_dir):
    out = tmp_path / "m"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--hidden", "8", "--epochs", "1",
                 "--max-train-samples", "300", "--max-test-samples", "100", "--quiet", "--no-report",
                 "--out", str(out)]) == 0
    data = _json(out / "metrics.json")["data"]
    expected = _sha256sums(mnist_dir / "mnist")
    assert len(expected) == 4
    assert {name: f["sha256"] for name, f in data["files"].items()} == expected
    assert data["name"] == "mnist" and data["checksums_verified"] is True
    for name, f in data["files"].items():
        assert Path(f["path"]).is_absolute() and Path(f["path"]).name.startswith(name)
        assert Path(f["path"]).parent == (mnist_dir / "mnist").absolute()
    assert str((mnist_dir / "mnist").absolute()) in data["source"]
    assert main(["report", str(out)]) == 0
    assert expected["train-images-idx3-ubyte"][:12] in (out / "report.md").read_text()


EXPERIMENT = """
name = "meta"
runner = "generic"
protocol = "corrected"
[data]
dataset = "mnist"
max_train_samples = 300
max_test_samples = 100
[split]
kind = "canonical"
[preprocessing]
scaling = "unit"
dtype = "float32"
[model]
hidden = [8]
[training]
optimizer = "adam"
lr = 0.01
batch_size = 50
epochs = 1
seed = 1
"""


def test_experiment_cell_records_command_and_mnist_sha256s(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "meta.toml"
    spec.write_text(EXPERIMENT)
    args = ["experiment", "run", str(spec), "--data-dir", str(mnist_dir), "--out", "ex"]
    assert main(args) == 0
    summary = _json(tmp_path / "ex" / "summary.json")
    assert summary["command"] == {"argv": ["mlplab", *args], "cwd": str(tmp_path)}
    (cell,) = summary["cells"]
    folder = tmp_path / "ex" / cell["folder"]
    assert _json(folder / "environment.json")["command"] == summary["command"]
    data = _json(folder / "metrics.json")["data"]
    assert {name: f["sha256"] for name, f in data["files"].items()} == _sha256sums(mnist_dir / "mnist")


PARALLEL = """
name = "par"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[model]
hidden = [8]
[training]
optimizer = "adam"
batch_size = 64
epochs = 2
[sweep]
"training.lr" = [0.01, 0.02]
"""


def test_parallel_cells_record_the_command_line(tmp_path):
    """Worker processes do not inherit the command line: the sweep hands it over with each job."""
    import tomllib

    from mlplab.environment import command_record, recorded_command
    from mlplab.experiments.runner import plan
    from mlplab.experiments.spec import from_dict
    from mlplab.experiments.sweep import plan_jobs, run_cells

    cells = plan(from_dict(tomllib.loads(PARALLEL), origin="par.toml"))
    assert len(plan_jobs(cells, [0, 1])) == 2  # two jobs, so two worker processes
    command = command_record(["experiment", "run", "par.toml"], cwd="/somewhere")
    with recorded_command(command):
        results = run_cells(cells, tmp_path / "cells", jobs=2)
    for r in results:
        assert not r.cached
        assert _json(r.folder / "environment.json")["command"] == command
        assert _json(r.folder / "metrics.json")["data"]["name"] == "digits"


def _strip(path: Path, drop: dict[str, list[str]]) -> None:
    """Remove fields from a JSON file, as a run folder written before they existed lacks them."""
    obj = _json(path)
    for key in drop.get(path.name, []):
        obj.pop(key, None)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


OLD = {"metrics.json": ["data"], "environment.json": ["command", "earlier_commands"]}


def test_old_run_folders_still_report_compare_and_evaluate(tmp_path, capsys):
    new, old = tmp_path / "new", tmp_path / "old"
    assert main([*TRAIN, "--no-report", "--out", str(new)]) == 0
    assert main([*TRAIN, "--no-report", "--out", str(old)]) == 0
    for name in OLD:
        _strip(old / name, OLD)
    assert main(["report", str(old)]) == 0
    text = (old / "report.md").read_text()
    assert "Data" not in text.split("## Summary")[0].replace("Dataset:", "") and "| command |" not in text
    assert main(["compare", str(new), str(old), "--out", str(tmp_path / "cmp")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["evaluate", str(old / "model.npz"), "--dataset", "digits", "--out", str(tmp_path / "ev"),
                 "--no-report"]) == 0
    assert _json(tmp_path / "ev" / "metrics.json")["data"]["name"] == "digits"


def test_compare_names_a_difference_in_data_files(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*TRAIN, "--no-report", "--out", str(a)]) == 0
    assert main([*TRAIN, "--no-report", "--out", str(b)]) == 0
    for run, sha in ((a, "1" * 64), (b, "2" * 64)):  # as if a folder dataset changed between the runs
        metrics = _json(run / "metrics.json")
        metrics["data"]["files"] = {"train-images-idx3-ubyte": {"path": "/d/x", "sha256": sha}}
        (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    err = capsys.readouterr().err
    assert "different data files" in err and "111111111111" in err and "222222222222" in err


class _StopAfterFirstEpoch(Callback):
    def on_epoch_end(self, trainer, logs):
        trainer.interrupt_requested = True


def _interrupted_run(out: Path) -> None:
    """A run folder stopped after its first epoch (checkpoint.npz, no metrics.json), started from Python."""
    from mlplab.errors import TrainingInterrupted
    from mlplab.runs import load_config, train_run

    cfg = load_config(None, {"data": {"dataset": "digits"}, "model": {"hidden": [8]},
                             "training": {"epochs": 3, "batch_size": 64}})
    with pytest.raises(TrainingInterrupted):
        train_run(cfg, out, callbacks=[_StopAfterFirstEpoch()], report=False)
    assert (out / "checkpoint.npz").exists() and not (out / "metrics.json").exists()


def test_resume_records_the_invocations_it_continues(tmp_path):
    out = tmp_path / "r"
    _interrupted_run(out)
    assert main(["train", "--resume", str(out), "--quiet", "--no-report"]) == 0
    env = _json(out / "environment.json")
    assert env["command"]["argv"] == ["mlplab", "train", "--resume", str(out), "--quiet", "--no-report"]
    assert env["earlier_commands"] == [None]  # the first part ran from Python


def test_resume_of_a_checkpoint_written_before_commands_were_recorded(tmp_path):
    out = tmp_path / "r"
    _interrupted_run(out)
    ckpt = out / "checkpoint.npz"
    with np.load(ckpt) as z:  # an older checkpoint: no "commands" in its metadata
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    del meta["extra"]["commands"]
    arrays["__meta__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(ckpt, **arrays)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    env = _json(out / "environment.json")
    assert env["earlier_commands"] is None and env["command"]["argv"][:3] == ["mlplab", "train", "--resume"]
    report = (out / "report.md").read_text()
    assert f"| command | mlplab train --resume {out} --quiet |" in report
    assert "| resumed from | not recorded" in report
    assert os.path.exists(out / "metrics.json") and not ckpt.exists()
