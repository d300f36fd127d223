"""QA round 27 (resuming an experiment): a cached cell whose cell.json lost its result, or holds
one of another shape, runs again with a warning instead of a traceback; a cell checkpoint of the
wrong shape, or holding snapshots the cell never took, is dropped and the cell starts again (as
an unusable checkpoint is); a folder named checkpoint.npz is no checkpoint to keep; and
``--resume`` refuses a damaged run.json, and a file where the cells' folder belongs, in one
line naming it, before anything runs."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.experiments.checkpoint import CHECKPOINT, CellCheckpoint
from mlplab.experiments.protocols.generic import Snapshots
from mlplab.experiments.sweep import _fresh_folder
from mlplab.network import MLP
from mlplab.training import Trainer
from tinyspecs import generic

SPEC = generic("qa27")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa27exp")
    (root / "spec.toml").write_text(SPEC)
    assert main(["experiment", "run", str(root / "spec.toml"), "--out", str(root / "ex")]) == 0
    return root / "ex"


@pytest.fixture
def experiment(finished, tmp_path):
    out = shutil.copytree(finished, tmp_path / "ex")
    (cell,) = (out / "cells").iterdir()
    return out, cell


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("edit", [
    lambda j: j.pop("result"),
    lambda j: j.__setitem__("result", [0.9]),
    lambda j: j.__setitem__("wall_s", "abc"),
    lambda j: j.__setitem__("wall_s", None),
], ids=["no-result", "result-list", "wall-text", "wall-null"])
def test_a_cell_json_of_another_shape_runs_the_cell_again(experiment, capsys, edit):
    out, cell = experiment
    saved = json.loads((cell / "cell.json").read_text())
    accuracy = saved["result"]["test_accuracy"]
    edit(saved)
    (cell / "cell.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(["experiment", "run", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is damaged" in err and "cell.json" in err
    assert json.loads((cell / "cell.json").read_text())["result"]["test_accuracy"] == accuracy  # run again


@pytest.mark.parametrize("text", ['{"seeds": "3"}', '{"seeds": 2.5}', '{"seeds": true}', '{"seeds": -1}', "{",
                                  "[3]"], ids=["text", "float", "bool", "negative", "truncated", "list"])
def test_resume_refuses_a_damaged_run_json(experiment, capsys, text):
    out, _ = experiment
    (out / "run.json").write_text(text)
    before = _files(out)
    capsys.readouterr()
    assert main(["experiment", "run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out / 'run.json'}: expected" in err[0], err
    assert _files(out) == before


def test_resume_refuses_a_file_where_the_cells_folder_belongs(experiment, capsys):
    out, _ = experiment
    shutil.rmtree(out / "cells")
    (out / "cells").write_text("not a folder")
    before = _files(out)
    capsys.readouterr()
    assert main(["experiment", "run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out / 'cells'} is a file" in err[0], err  # (was "File exists", after the bar)
    assert _files(out) == before


def _cell_checkpoint(folder):
    """A cell checkpoint after 2 epochs (a snapshot at epoch 1) and a fresh trainer to restore it into."""
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 4)).astype(np.float32), rng.integers(0, 3, 40)

    def make():
        tr = Trainer(MLP([4, 5, 3], "relu", seed=0), "adam", lr=0.01, batch_size=8)
        return tr, Snapshots(None, [1, 3], 1)

    tr, snaps = make()
    tr.fit(X, y, 2)
    snaps.snapshots = {1: {"train_accuracy": 0.5, "test_accuracy": 0.25}}
    CellCheckpoint(folder, tr, {"snapshots": snaps}).write()
    return make()


def _edit_meta(path, mutate):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    mutate(meta)
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("mutate", [
    lambda m: m.__setitem__("extra", [1]),                                             # AttributeError
    lambda m: m["extra"]["states"]["snapshots"].__setitem__("snapshots", [1]),          # AttributeError
    lambda m: m["extra"]["states"]["snapshots"]["snapshots"].__setitem__("1", "x"),     # was loaded as is
    lambda m: m["extra"]["states"]["snapshots"]["snapshots"]["1"].__setitem__("test_accuracy", "x"),
    lambda m: m["extra"]["states"]["snapshots"]["snapshots"].__setitem__("2", {}),      # not a recorded epoch
], ids=["extra-list", "snapshots-list", "snapshot-text", "snapshot-value-text", "snapshot-other-epoch"])
def test_a_cell_checkpoint_of_another_shape_starts_the_cell_again(tmp_path, mutate):
    tr, snaps = _cell_checkpoint(tmp_path)
    _edit_meta(tmp_path / CHECKPOINT, mutate)
    assert CellCheckpoint(tmp_path, tr, {"snapshots": snaps}).restore() is False
    assert tr.epochs_done == 0 and snaps.snapshots == {} and not (tmp_path / CHECKPOINT).exists()


def test_a_folder_named_checkpoint_is_not_kept_as_the_cells_checkpoint(tmp_path):
    (tmp_path / CHECKPOINT).mkdir()  # restore() could neither load nor remove it
    (tmp_path / CHECKPOINT / "x").write_text("x")
    _fresh_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []
