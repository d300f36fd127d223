"""Checkpoints inside experiment cells (mlplab.experiments.checkpoint): an interrupted cell
continues where its last checkpoint was and ends with the bits of an uninterrupted run."""

import json

import numpy as np
import pytest

from mlplab.experiments import checkpoint as ckpt
from mlplab.experiments.checkpoint import CHECKPOINT, CellCheckpoint, CheckpointClock
from mlplab.experiments.protocols import generic
from mlplab.experiments.protocols.two_hidden import ShuffleStream
from mlplab.experiments.sweep import execute_cell
from mlplab.network import MLP
from mlplab.serialization import load_model
from mlplab.training import Callback, History, Trainer


SPEC = """
name = "ck"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[preprocessing]
scaling = "unit"
dtype = "float32"
[model]
hidden = [32]
hidden_activation = "relu"
[training]
optimizer = "{optimizer}"
lr = 0.01
batch_size = 16
epochs = 12
seed = 3
record_epochs = [4, 12]
cost_every = 2
"""


def _cfg(tmp_path, optimizer):
    from mlplab.experiments.spec import load_spec

    p = tmp_path / "ck.toml"
    p.write_text(SPEC.format(optimizer=optimizer))
    (cell,) = generic.cells(load_spec(p))
    return cell.config


class _Interrupt(Callback):
    def __init__(self, at):
        self.at = at

    def on_epoch_recorded(self, trainer, logs):
        if logs["epoch"] == self.at:
            raise KeyboardInterrupt


def _params(folder):
    return [p.copy() for p in load_model(folder / "model.npz").net.parameters()]


@pytest.fixture()
def every_epoch(monkeypatch):
    monkeypatch.setenv(ckpt.ENV_VAR, "0")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cell_resumes_from_checkpoint_bit_identical(tmp_path, monkeypatch, every_epoch, optimizer):
    cfg = _cfg(tmp_path, optimizer)
    ref = tmp_path / "ref"
    execute_cell("generic:run_cell", cfg, str(ref), "k")
    # interrupt the second attempt in epoch 7 (its callbacks run before the checkpoint: 6 is saved)
    out = tmp_path / "cell"
    real_setup = generic._setup
    monkeypatch.setattr(generic, "_setup", lambda c, d: _with(real_setup(c, d), _Interrupt(7)))
    with pytest.raises(KeyboardInterrupt):
        execute_cell("generic:run_cell", cfg, str(out), "k")
    saved = load_model(out / CHECKPOINT)
    assert saved.trainer_state["epochs_done"] == 6
    assert json.loads(json.dumps(saved.meta["extra"]))["states"]["snapshots"]["snapshots"].keys() == {"4"}
    monkeypatch.setattr(generic, "_setup", real_setup)
    execute_cell("generic:run_cell", cfg, str(out), "k")
    assert not (out / CHECKPOINT).exists()
    for a, b in zip(_params(out), _params(ref)):
        assert np.array_equal(a, b)
    got = json.loads((out / "cell.json").read_text())["result"]
    want = json.loads((ref / "cell.json").read_text())["result"]
    assert got["snapshots"] == want["snapshots"] and got["test_accuracy"] == want["test_accuracy"]
    # the first 6 epochs come from the interrupted attempt (wall times included), the rest are new
    before = History.from_dict(saved.trainer_state["history"]).to_csv().splitlines()
    h_out = (out / "history.csv").read_text().splitlines()
    h_ref = (ref / "history.csv").read_text().splitlines()
    assert len(before) == 7 and h_out[:7] == before and len(h_out) == len(h_ref) == 13
    assert [r.split(",")[1:3] for r in h_out] == [r.split(",")[1:3] for r in h_ref]  # loss, accuracy


def _with(pair, cb):
    trainer, snaps = pair
    trainer.callbacks.insert(0, cb)
    return trainer, snaps


def test_clock_answers_once_per_epoch():
    clock = CheckpointClock(every_s=0.0)
    assert clock.due(1) and clock.due(1)  # every trainer of a stack asking about epoch 1
    clock = CheckpointClock(every_s=3600.0)
    assert not clock.due(1) and not clock.due(2)


def test_unusable_checkpoint_is_dropped(tmp_path):
    net = MLP([4, 3, 2], "relu", "softmax", "cross_entropy", seed=0)
    tr = Trainer(net, {"name": "sgd"}, lr=0.1, batch_size=2, seed=0)
    CellCheckpoint(tmp_path, tr).write()
    other = MLP([4, 5, 2], "relu", "softmax", "cross_entropy", seed=0)
    ck = CellCheckpoint(tmp_path, Trainer(other, {"name": "sgd"}, lr=0.1, batch_size=2, seed=0))
    assert ck.restore() is False and not (tmp_path / CHECKPOINT).exists()
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    assert ck.restore() is False and not (tmp_path / CHECKPOINT).exists()


def test_replay_stream_state_round_trips_through_json():
    a = ShuffleStream(123)
    a.shuffled(50)
    b = ShuffleStream(0)
    b.load_cell_state(json.loads(json.dumps(a.cell_state())))
    assert np.array_equal(a.shuffled(1000), b.shuffled(1000)) and a.draws == b.draws == 2


def test_nan_costs_survive_the_json_checkpoint():
    from mlplab.experiments.protocols.relu_softmax import Budgets

    cb = Budgets(None, [1], 1)
    cb.costs = [(0, 2.5, float("nan")), (1, 2.0, 1.9)]
    cb.snapshots = {1: {"train_accuracy": 0.5}}
    back = Budgets(None, [1], 1)
    back.load_cell_state(json.loads(json.dumps(cb.cell_state(), allow_nan=False)))
    assert back.snapshots == cb.snapshots
    assert back.costs[1] == (1, 2.0, 1.9) and np.isnan(back.costs[0][2])


class _RefusesCheckpointState:
    """A cell's callback state whose load refuses the checkpoint's (``n`` other than 0, as from
    another version) and accepts its own fresh state (``n == 0``)."""

    def __init__(self, n):
        self.n = n

    def cell_state(self):
        return {"n": self.n}

    def load_cell_state(self, state):
        if state["n"] != 0:
            raise ValueError("unknown state")
        self.n = state["n"]


def test_half_usable_checkpoint_leaves_nothing_half_restored(tmp_path):
    # weights and trainer state load, the callback state does not: everything goes back
    Broken = _RefusesCheckpointState
    other = MLP([4, 3, 2], "relu", "softmax", "cross_entropy", seed=0)
    tr_other = Trainer(other, {"name": "sgd"}, lr=0.1, batch_size=2, seed=0)
    tr_other.fit(np.eye(4, dtype=np.float32), np.array([0, 1, 0, 1]), 3)
    CellCheckpoint(tmp_path, tr_other, {"b": Broken(1)}).write()
    net = MLP([4, 3, 2], "relu", "softmax", "cross_entropy", seed=0)
    tr = Trainer(net, {"name": "sgd"}, lr=0.1, batch_size=2, seed=0)
    w0 = [w.copy() for w in net.get_weights()]
    assert CellCheckpoint(tmp_path, tr, {"b": Broken(0)}).restore() is False
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), w0))
    assert tr.epochs_done == 0 and len(tr.history.epoch) == 0
    assert not (tmp_path / CHECKPOINT).exists()


def test_rolled_back_checkpoint_leaves_the_optimizer_and_epoch_position_fresh(tmp_path):
    # the rollback point is a snapshot: restoring the checkpoint's Adam moments and mid-epoch
    # position into the trainer must not change it, so the rollback gives a fresh trainer back
    Refuses = _RefusesCheckpointState
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 3, 200)

    def make():
        net = MLP([6, 8, 3], "relu", "softmax", "cross_entropy", seed=0)
        return Trainer(net, "adam", lr=0.01, batch_size=50)

    old = make()
    old.fit(X, y, 2)
    old.interrupt_requested = True
    with pytest.raises(Exception, match="interrupted"):
        old.fit(X, y, 3)  # stops inside epoch 3: the checkpoint holds a mid-epoch position
    CellCheckpoint(tmp_path, old, {"s": Refuses(1)}).write()

    tr, fresh = make(), make()
    assert ckpt.attach(tmp_path, tr, {"s": Refuses(0)}, CheckpointClock(1e9)).resumed_epoch is None
    assert not (tmp_path / CHECKPOINT).exists()
    assert tr.optimizer.t == 0 and tr._resume is None and tr.epochs_done == 0
    assert all(not a.any() for lst in tr.optimizer.state.values() for a in lst)
    tr.fit(X, y, 2)
    fresh.fit(X, y, 2)
    assert all(np.array_equal(a, b) for a, b in zip(tr.net.get_weights(), fresh.net.get_weights()))
