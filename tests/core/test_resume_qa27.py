"""QA round 27 (resuming a run folder): a checkpoint whose history lacks a column resumes; one
that contradicts its folder's config.toml (another network, optimizer, rate, batch size...),
whose config.toml asks for fewer epochs than it has done, or whose saved state holds values a
run cannot record (history, first loss, plateau and early-stopping state, the interrupted
epoch's position) is refused with one line naming the file, before anything is written; and a
file that cannot be written is named, not its temporary name."""

from __future__ import annotations

import errno
import io
import json
import shutil
import tempfile

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.errors import ConfigError, TrainingInterrupted
from mlplab.network import MLP
from mlplab.schedules import ReduceOnPlateau
from mlplab.serialization import load_model
from mlplab.training import Callback, EarlyStopping, History, Trainer


def _read(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("__meta__").tobytes().decode()), arrays


def _edit(path, mutate):
    meta, arrays = _read(path)
    mutate(meta, arrays)
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    path.write_bytes(buf.getvalue())


class _StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, logs):
        if logs["epoch"] >= self.epoch:
            trainer.interrupt_requested = True


def _interrupted(out, *, after_epoch=None, **training):
    """A run folder as an interrupted `mlplab train` leaves it: after epoch ``after_epoch`` (its
    history then has rows), else inside the first epoch (a saved minibatch position)."""
    from mlplab.runs import load_config, train_run

    cfg = load_config(None, {"data": {"dataset": "digits"}, "model": {"hidden": [8]},
                             "training": {"epochs": 3, "batch_size": 32, "threads": 1, **training}})
    hook = None if after_epoch else (lambda trainer: setattr(trainer, "interrupt_requested", True))
    with pytest.raises(TrainingInterrupted):
        train_run(cfg, out, callbacks=[_StopAfter(after_epoch)] if after_epoch else [], trainer_hook=hook,
                  report=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa27")
    return {"epoch": _interrupted(root / "epoch", after_epoch=1),
            "minibatch": _interrupted(root / "minibatch"),
            "adam": _interrupted(root / "adam", after_epoch=1, optimizer="adam")}


@pytest.fixture
def run(runs, tmp_path):
    def copy(name="epoch"):
        return shutil.copytree(runs[name], tmp_path / name)
    return copy


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _resume_error(out, capsys):
    """Resume ``out``: exit code 2, one line on stderr (returned, the folder written DIR), nothing
    in the folder changed."""
    before = _files(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert _files(out) == before
    return err[0].replace(str(out), "DIR")


# -- a history column the checkpoint lacks: not recorded, not a crash -----------------------------
def test_history_from_dict_fills_a_missing_column_with_none():
    h = History.from_dict({"epoch": [1, 2], "loss": [0.5, 0.4]})
    assert h.lr == [None, None] and h.to_csv().splitlines()[1] == "1,0.5,,,,,"


def test_resume_from_a_checkpoint_whose_history_lacks_a_column(run, capsys):
    out = run()
    _edit(out / "checkpoint.npz", lambda m, a: m["trainer"]["history"].pop("lr"))
    assert main(["train", "--resume", str(out), "--quiet", "--no-report"]) == 0
    rows = [line.split(",") for line in (out / "history.csv").read_text().splitlines()]
    lr = rows[0].index("lr")
    assert [r[lr] for r in rows[1:]] == ["", "0.1", "0.1"]


# -- config.toml contradicting the checkpoint ----------------------------------------------------------
@pytest.mark.parametrize("old, new, named", [
    ("hidden = [\n    8,\n]", "hidden = [16]", "sizes"),  # refused before, naming no file
    ('hidden_activation = "sigmoid"', 'hidden_activation = "tanh"', "hidden_activation"),
    ('dtype = "float32"', 'dtype = "float64"', "dtype"),
    ("seed = 0", "seed = 1", "seed"),
    ("lr = 0.1", "lr = 0.5", "training.lr"),
    ("batch_size = 32", "batch_size = 64", "training.batch_size"),
    ('optimizer = "sgd"', 'optimizer = "adam"', "training.optimizer"),
    ('scaling = "unit"', 'scaling = "standard"', "data.scaling"),
    ('split = "canonical"', 'split = "stratified"', "data.split"),
], ids=["hidden", "activation", "dtype", "seed", "lr", "batch-size", "optimizer", "scaling", "split"])
def test_resume_refuses_a_config_toml_that_contradicts_its_checkpoint(run, capsys, old, new, named):
    out = run()
    text = (out / "config.toml").read_text()
    assert old in text
    (out / "config.toml").write_text(text.replace(old, new))
    err = _resume_error(out, capsys)
    assert "DIR/checkpoint.npz" in err and "DIR/config.toml" in err and named in err


@pytest.mark.parametrize("other, named", [("adam", "training.optimizer"), ("tanh", "hidden_activation")])
def test_resume_refuses_a_checkpoint_copied_from_another_run(runs, run, capsys, other, named):
    out = run()
    if other == "adam":  # its Adam moments were ignored by the SGD run of config.toml
        shutil.copy(runs["adam"] / "checkpoint.npz", out / "checkpoint.npz")
    else:  # another activation, the same shapes: its weights loaded into this sigmoid network
        _edit(out / "checkpoint.npz", lambda m, a: m["network"].__setitem__("hidden_activation", "tanh"))
    err = _resume_error(out, capsys)
    assert "DIR/checkpoint.npz" in err and named in err


def test_resume_refuses_fewer_epochs_than_the_checkpoint_has_done(tmp_path, capsys):
    out = _interrupted(tmp_path / "two", after_epoch=2)
    (out / "config.toml").write_text((out / "config.toml").read_text().replace("epochs = 3", "epochs = 1"))
    err = _resume_error(out, capsys)
    assert "DIR/config.toml" in err and "training.epochs = 1" in err and "done 2 epochs" in err


# -- a run killed after early stopping, before its results were written -----------------------------
class _KilledAtTheEnd(Callback):
    def on_train_end(self, trainer):  # as SIGKILL while the results are written: the checkpoint stays
        raise KeyboardInterrupt


def test_a_run_killed_after_it_stopped_early_resumes_to_the_same_end(tmp_path):
    from mlplab.runs import load_config, train_run

    cfg = load_config(None, {"data": {"dataset": "digits", "validation_fraction": 0.2}, "model": {"hidden": [16]},
                             "training": {"epochs": 60, "batch_size": 32, "threads": 1, "optimizer": "adam",
                                          "lr": 0.05, "early_stopping_patience": 1, "checkpoint_seconds": 1e-6}})
    ref = train_run(cfg, tmp_path / "ref", report=False)
    assert ref["epochs_run"] < 60 and ref["stop_reason"].startswith("early stopping")
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "run", callbacks=[_KilledAtTheEnd()], report=False)
    assert (tmp_path / "run" / "checkpoint.npz").exists()
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet", "--no-report"]) == 0
    got = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (got["epochs_run"], got["stop_reason"], got["restored_best_epoch"]) == (
        ref["epochs_run"], ref["stop_reason"], ref["restored_best_epoch"])  # it trained on before

    def rows(folder):  # history.csv without the wall times
        return [line.rsplit(",", 1)[0] for line in (folder / "history.csv").read_text().splitlines()]
    assert rows(tmp_path / "run") == rows(tmp_path / "ref")
    for a, b in zip(load_model(tmp_path / "run" / "model.npz").net.parameters(),
                    load_model(tmp_path / "ref" / "model.npz").net.parameters()):
        assert np.array_equal(a, b)


# -- saved state no run can record -------------------------------------------------------------------
@pytest.mark.parametrize("column, values", [
    ("note", ["a,b\nc"]),       # a column a callback added: written to history.csv as it is
    ("note", [{"x": 1}]),
    ("time_s", [-5.0]),         # summed into training_time_s
    ("lr", [-0.1]),
    ("accuracy", [1.5]),
    ("val_accuracy", [-0.5]),
    ("epoch", [1.0]),
], ids=["extra-text", "extra-table", "time-negative", "lr-negative", "accuracy-above-1", "val-accuracy-negative",
        "epoch-float"])
def test_history_values_no_run_records_are_refused(run, capsys, column, values):
    out = run()
    _edit(out / "checkpoint.npz", lambda m, a: m["trainer"]["history"].__setitem__(column, values))
    err = _resume_error(out, capsys)
    assert err.startswith("mlplab: error: DIR/checkpoint.npz: ") and "history" in err


def test_a_first_loss_that_is_not_positive_is_refused(run, capsys):
    # the divergence guard compares each epoch's loss with it: -1 made the next epoch "explode"
    out = run()
    _edit(out / "checkpoint.npz", lambda m, a: m["trainer"].__setitem__("first_loss", -1.0))
    err = _resume_error(out, capsys)
    assert err.startswith("mlplab: error: DIR/checkpoint.npz: ") and "first_loss must be" in err


def _position(order, batch=1, correct=0, seen=32):
    def mutate(m, a):
        m["trainer"]["resume"].update(batch=batch, correct=correct, seen=seen)
        a["trainer/resume/order"] = np.asarray(order, dtype=np.int64)
    return mutate


@pytest.mark.parametrize("mutate, fragment", [
    (_position(np.arange(10)), "each of the"),                       # trained on 10 rows
    (_position(np.zeros(1348)), "each of the"),                      # trained on row 0 over and over
    (_position(np.arange(1348), batch=300), "does not fit"),        # nothing left of the epoch
    (_position(np.arange(1348), correct=33, seen=32), "resume.correct"),  # accuracy above 1
], ids=["order-short", "order-repeats", "batch-past-end", "correct-above-seen"])
def test_an_interrupted_epoch_position_that_does_not_fit_is_refused(run, capsys, mutate, fragment):
    out = run("minibatch")
    _edit(out / "checkpoint.npz", mutate)
    err = _resume_error(out, capsys)
    assert err.startswith("mlplab: error: DIR/checkpoint.npz: ") and fragment in err


@pytest.mark.parametrize("state", [
    {"best": None, "bad": 0, "scale": -1.0},     # the rate became 0: training stopped learning
    {"best": None, "bad": 0, "scale": 50.0},
    {"best": None, "bad": -100, "scale": 1.0},
    {"best": None, "bad": 1.7, "scale": 1.0},
    {"best": "nan", "bad": 0, "scale": 1.0},
], ids=["scale-negative", "scale-above-1", "bad-negative", "bad-float", "best-nan"])
def test_plateau_schedule_state_is_checked(state):
    sched = ReduceOnPlateau(patience=3)
    with pytest.raises(ConfigError, match="reduce_on_plateau state"):
        sched.load_state(state)
    assert sched.state() == {"best": None, "bad": 0, "scale": 1.0}


@pytest.mark.parametrize("key, value", [("wait", -3), ("wait", 1.5), ("best_epoch", -1), ("best_epoch", 0)])
def test_early_stopping_state_is_checked(key, value):
    net = MLP([3, 4, 2], seed=0)
    es = EarlyStopping(monitor="loss", patience=2)
    meta = {"monitor": "loss", "best": 0.5, "best_epoch": 1, "wait": 0, "n_best_weights": None, key: value}
    with pytest.raises(ConfigError, match=key):
        es.checked_checkpoint_state(meta, {}, Trainer(net))


def test_early_stopping_best_weights_must_be_finite():
    net = MLP([3, 4, 2], seed=0)
    weights = {f"best_weights/{i}": p.copy() for i, p in enumerate(net.parameters())}
    weights["best_weights/0"][0, 0] = np.nan  # restored at the end of a run that does not improve
    meta = {"monitor": "loss", "best": 0.5, "best_epoch": 1, "wait": 0, "n_best_weights": len(weights)}
    with pytest.raises(ConfigError, match="finite"):
        EarlyStopping(monitor="loss").checked_checkpoint_state(meta, weights, Trainer(net))


# -- a file that cannot be written is named --------------------------------------------------------------
def test_a_folder_refusing_the_temporary_file_names_the_file_being_written(tmp_path, monkeypatch):
    from mlplab.io import atomic_write_text

    def refuse(prefix="", suffix="", dir=None):  # as mkstemp fails in a read-only folder (root ignores chmod)
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}x1y2z3{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OSError) as ei:
        atomic_write_text(tmp_path / "config.toml", "x")
    assert ei.value.filename == str(tmp_path / "config.toml") and ei.value.errno == errno.EROFS


def test_report_on_an_interrupted_run_points_at_resume(tmp_path, capsys):
    out = _interrupted(tmp_path / "run", after_epoch=1)
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train --resume" in err and "metrics.json" in err, err
