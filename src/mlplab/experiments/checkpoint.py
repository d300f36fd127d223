"""Checkpoints inside experiment cells, so an interrupted sweep resumes a long cell where it was.

A cell that trains with a :class:`~mlplab.training.Trainer` attaches a :class:`CellCheckpoint`:
at the end of an epoch, once ``every_s`` seconds have passed since the last one, it writes
``checkpoint.npz`` in the cell's folder atomically (weights, optimizer state, shuffling RNG,
history, the state of the cell's own callbacks: snapshots, cost curves, replayed random
streams, and the data the cell read, :func:`mlplab.experiments.sweep.cell_data`: a checkpoint
of other data is not resumed). When the sweep runs again,
:func:`mlplab.experiments.sweep.execute_cell` keeps that file (and nothing else) and the cell
continues from it, finishing with the bits an uninterrupted run gives (same machine, same
``--threads``). An interrupted cell loses at most ``every_s`` seconds plus one epoch. Cells
trained by PyTorch or scikit-learn restart.

The cells of a stacked job share one :class:`CheckpointClock`, so all of them checkpoint at the
same epoch and resume together as one stack.

Ctrl-C or SIGTERM does better than the last periodic checkpoint: :func:`request_stop` (called
from the signal handler of the process running the cell) asks every trainer that is training
to stop at the end of its current minibatch (a stack: at the end of its epoch); the cell then
writes its checkpoint at exactly that point (:func:`write_active`) and the process leaves. A
cell that is not training at that moment (loading data, writing its run folder, or trained by
PyTorch or scikit-learn) stops at once and continues from its last checkpoint, if any.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Protocol

from mlplab.errors import MlplabError
from mlplab.training import Callback

CHECKPOINT = "checkpoint.npz"
#: seconds between checkpoints of a running cell (``--checkpoint-every`` sets the variable)
ENV_VAR = "MLPLAB_CELL_CHECKPOINT_S"
DEFAULT_EVERY_S = 60.0


def every_seconds() -> float:
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return DEFAULT_EVERY_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        return DEFAULT_EVERY_S


class Stateful(Protocol):
    def cell_state(self) -> Any: ...

    def load_cell_state(self, state: Any) -> None: ...


class CheckpointClock:
    """Decides once per epoch number whether it is time to checkpoint; every trainer of a job
    asking about the same epoch gets the same answer."""

    def __init__(self, every_s: float | None = None):
        self.every_s = every_seconds() if every_s is None else float(every_s)
        self._last = time.monotonic()
        self._epoch: int | None = None
        self._due = False

    def due(self, epoch: int) -> bool:
        if epoch != self._epoch:
            self._epoch = epoch
            self._due = time.monotonic() - self._last >= self.every_s
            if self._due:
                self._last = time.monotonic()
        return self._due


#: the checkpoints whose trainers are inside ``fit`` in this process
_ACTIVE: list[CellCheckpoint] = []


def request_stop() -> bool:
    """Ask every training trainer of this process to stop after its current minibatch;
    ``False`` if none is training (the caller then stops the process at once)."""
    for ck in _ACTIVE:
        ck.trainer.interrupt_requested = True
    return bool(_ACTIVE)


def forget_active() -> None:
    _ACTIVE.clear()


def write_active() -> None:
    """After the interrupted trainers stopped: write their checkpoints (exact position)."""
    for ck in list(_ACTIVE):
        ck.write()
        _ACTIVE.remove(ck)


class CellCheckpoint(Callback):
    """Periodic checkpoint of one trainer (and the callbacks in ``states``) in ``folder``."""

    def __init__(self, folder: Path, trainer, states: dict[str, Stateful] | None = None,
                 clock: CheckpointClock | None = None):
        self.path = Path(folder) / CHECKPOINT
        self.trainer = trainer
        self.states = dict(states or {})
        self.clock = clock or CheckpointClock()
        self.resumed_epoch: int | None = None
        trainer.callbacks.append(self)

    def restore(self) -> bool:
        """Load the checkpoint if there is a usable one; ``False`` (and the file removed) if
        there is none or it cannot be used (another mlplab version, another architecture, other
        data than the cell read now)."""
        from mlplab.serialization import load_model, restore_trainer

        if not self.path.exists():
            return False
        net, trainer = self.trainer.net, self.trainer
        # the rollback point: copies (state_dict's arrays are too), which loading the checkpoint
        # into the trainer's own arrays below does not change
        before = (net.get_weights(), trainer.state_dict(), {k: o.cell_state() for k, o in self.states.items()})
        try:
            saved = load_model(self.path)
            extra = saved.meta.get("extra") or {}
            if saved.net.config() != net.config() or set(extra.get("states", {})) != set(self.states):
                raise MlplabError("the checkpoint belongs to another configuration")
            if "data" in extra and extra["data"] != _cell_data():  # older checkpoints do not record it
                raise MlplabError("the checkpoint was trained on other data")
            net.set_weights(saved.net.parameters())
            restore_trainer(saved, trainer)
            for name, obj in self.states.items():
                obj.load_cell_state(extra["states"][name])
        except (MlplabError, KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError):
            # unusable: start from the beginning, exactly as if there had been no checkpoint
            net.set_weights(before[0])
            trainer.load_state_dict(*before[1])
            for name, obj in self.states.items():
                obj.load_cell_state(before[2][name])
            self.path.unlink(missing_ok=True)
            return False
        self.resumed_epoch = self.trainer.epochs_done
        return True

    def write(self) -> None:
        from mlplab.serialization import save_model

        save_model(self.path, self.trainer.net, trainer=self.trainer,
                   extra_meta={"states": {name: obj.cell_state() for name, obj in self.states.items()},
                               "data": _cell_data()})

    def on_train_begin(self, trainer):
        if self not in _ACTIVE:
            _ACTIVE.append(self)

    def on_train_end(self, trainer):
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def on_epoch_recorded(self, trainer, logs):
        if self.clock.due(int(logs["epoch"])):
            self.write()

    def clear(self) -> None:
        """The cell finished: its checkpoint is no longer needed."""
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        self.path.unlink(missing_ok=True)


def _cell_data() -> list[dict[str, Any]]:
    from mlplab.experiments.sweep import cell_data

    return cell_data()


def attach(folder: Path, trainer, states: dict[str, Stateful] | None = None,
           clock: CheckpointClock | None = None) -> CellCheckpoint:
    """A :class:`CellCheckpoint` on ``trainer``, restored from ``folder`` when a usable
    checkpoint is there (call before training starts)."""
    ck = CellCheckpoint(folder, trainer, states, clock)
    ck.restore()
    return ck


def snapshots_back(saved: Any, epochs: set[int]) -> dict[int, dict[str, float]]:
    """The snapshots a cell's callback saved (``{"epoch": {"metric": number}}``), checked: each
    is of an epoch the callback records and holds finite numbers (a ValueError makes
    :meth:`CellCheckpoint.restore` start the cell again, rather than report what it did not measure)."""
    out = {}
    for key, snap in saved.items():
        if int(key) not in epochs or not isinstance(snap, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in snap.values()):
            raise ValueError(f"snapshot {key!r} is not one this cell records")
        out[int(key)] = snap
    return out


def json_float(x: float) -> float | None:
    """NaN and infinities as ``None`` (checkpoint metadata is strict JSON)."""
    import math

    return float(x) if math.isfinite(x) else None


def float_back(x: float | None) -> float:
    return float("nan") if x is None else float(x)
