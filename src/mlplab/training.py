"""The training loop: minibatch SGD or full-batch gradient descent, with callbacks.

:class:`Trainer` owns everything that changes during training (optimizer state, shuffling
RNG, schedule state, history, position inside an epoch), so a checkpoint of
:meth:`Trainer.state_dict` resumes to bit-identical weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from mlplab.errors import ConfigError, DivergenceError, TrainingInterrupted
from mlplab.network import MLP, STREAM_SHUFFLE, rng_for
from mlplab.optimizers import Optimizer, flush_subnormals, get_optimizer
from mlplab.schedules import Schedule, get_schedule

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time_s")
#: the values a history column can hold, where not any finite number (checked when a state loads)
_HISTORY_RANGES = {"accuracy": (0.0, 1.0), "val_accuracy": (0.0, 1.0), "lr": (0.0, math.inf),
                   "time_s": (0.0, math.inf)}


@dataclass
class History:
    """Per-epoch records; ``extra`` holds columns that callbacks add (e.g. test accuracy).

    ``loss`` and ``val_loss`` are the network's loss function alone (the batch mean), without
    the L2 penalty the steps also descend (:attr:`MLP.l2 <mlplab.network.MLP>`): comparable
    between training and validation and across ``l2`` settings. :meth:`MLP.loss_and_gradients
    <mlplab.network.MLP.loss_and_gradients>` and gradcheck include the penalty."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)  # None: not measured (train_metrics="none")
    accuracy: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    extra: dict[str, list] = field(default_factory=dict)

    def append(self, row: dict[str, Any]) -> None:
        for key in HISTORY_COLUMNS:
            getattr(self, key).append(row.get(key))
        for key, value in row.items():
            if key not in HISTORY_COLUMNS:
                self.extra.setdefault(key, [None] * (len(self.epoch) - 1)).append(value)
        for col in self.extra.values():  # columns a row did not fill
            while len(col) < len(self.epoch):
                col.append(None)

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict[str, list]:
        d = {key: list(getattr(self, key)) for key in HISTORY_COLUMNS}
        d.update({k: list(v) for k, v in self.extra.items()})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> "History":
        """The history :meth:`as_dict` gave; a column it lacks is not recorded (``None`` per epoch)."""
        n = len(d.get("epoch", []))
        h = cls(**{k: list(d.get(k, [None] * n if k != "epoch" else [])) for k in HISTORY_COLUMNS})
        h.extra = {k: list(v) for k, v in d.items() if k not in HISTORY_COLUMNS}
        return h

    def to_csv(self) -> str:
        d = self.as_dict()
        cols = list(d)
        lines = [",".join(cols)]
        for i in range(len(self)):
            lines.append(",".join(_fmt(d[c][i]) for c in cols))
        return "\n".join(lines) + "\n"

    def last(self) -> dict[str, Any]:
        return {k: v[-1] for k, v in self.as_dict().items()} if len(self) else {}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


class Callback:
    """Hooks called by :class:`Trainer`. Set ``trainer.stop_training = True`` to stop."""

    def on_train_begin(self, trainer: "Trainer") -> None: ...

    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None: ...

    def on_epoch_recorded(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        """After the epoch is in ``trainer.history`` (the place to write checkpoints)."""

    def on_train_end(self, trainer: "Trainer") -> None: ...

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """What a resumed run needs of this callback, saved with the trainer's state
        (:meth:`Trainer.state_dict`): (JSON-able data, named arrays), or ``None`` (nothing)."""
        return None

    def checked_checkpoint_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                                 trainer: "Trainer") -> Callable[[], None]:
        """Check a :meth:`checkpoint_state` result; return the call that loads it. Checking
        and loading are apart so that a trainer restores all or nothing."""
        return lambda: None


def _json_number(x: float | None) -> float | str | None:
    """A float for strict JSON: non-finite values as their text ('inf', 'nan'; ``float`` reads them)."""
    return None if x is None else (float(x) if math.isfinite(x) else str(float(x)))


class EarlyStopping(Callback):
    """Stop once ``monitor`` has gone more than ``patience`` consecutive epochs without
    improving by more than ``min_delta`` (scikit-learn's ``n_iter_no_change`` rule: patience 0
    stops at the first epoch without improvement); restore the best weights. ``monitor`` is a
    history column: ``loss`` and ``val_loss`` leave out the L2 penalty (see :class:`History`).

    Its state (best value and epoch, the epochs waited, the best weights) goes into checkpoints,
    so a resumed run stops where, and restores what, the uninterrupted run would have."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True):
        if int(patience) < 0:
            raise ConfigError(f"early stopping patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.restore_best = restore_best
        self.mode = "max" if "acc" in monitor else "min"
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self._wait = 0

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise ConfigError(f"early stopping monitors {self.monitor!r}, which this run does not record"
                              " (give validation data or monitor 'loss')")
        if self._better(value):
            self.best, self.best_epoch, self._wait = value, logs["epoch"], 0
            if self.restore_best:
                self.best_weights = trainer.net.get_weights()
        else:
            self._wait += 1
            if self._wait > self.patience:
                trainer.stop_training = True
                trainer.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                       f"{self.patience + 1} epochs (best {self.best:.6g} at epoch {self.best_epoch})")

    def on_train_end(self, trainer):
        if self.restore_best and self.best_weights is not None:
            trainer.net.set_weights(self.best_weights)
            trainer.restored_epoch = self.best_epoch

    def checkpoint_state(self):
        meta = {"monitor": self.monitor, "best": _json_number(self.best), "best_epoch": self.best_epoch,
                "wait": self._wait, "n_best_weights": None if self.best_weights is None else len(self.best_weights)}
        arrays = {f"best_weights/{i}": w.copy() for i, w in enumerate(self.best_weights or [])}
        return meta, arrays

    def checked_checkpoint_state(self, meta, arrays, trainer):
        if meta["monitor"] != self.monitor:
            raise ConfigError(f"the checkpoint's early stopping monitors {meta['monitor']!r}, this run {self.monitor!r}")
        best = None if meta["best"] is None else float(meta["best"])
        best_epoch, wait = meta["best_epoch"], meta["wait"]
        if best_epoch is not None and (type(best_epoch) is not int or best_epoch < 1):
            raise ConfigError(f"the checkpoint's early stopping best_epoch must be an integer >= 1, got {best_epoch!r}")
        if type(wait) is not int or wait < 0:
            raise ConfigError(f"the checkpoint's early stopping wait must be an integer >= 0, got {wait!r}")
        weights = None
        if meta["n_best_weights"] is not None:
            weights = [np.array(arrays[f"best_weights/{i}"]) for i in range(int(meta["n_best_weights"]))]
            params = trainer.net.parameters()
            if len(weights) != len(params) or any(w.shape != p.shape for w, p in zip(weights, params)):
                raise ConfigError("the checkpoint's early-stopping best weights do not fit this network")
            if not all(w.dtype.kind == "f" and np.isfinite(w).all() for w in weights):
                raise ConfigError("the checkpoint's early-stopping best weights are not all finite numbers")

        def load() -> None:
            self.best, self.best_epoch, self._wait, self.best_weights = best, best_epoch, wait, weights
        return load


class LambdaCallback(Callback):
    def __init__(self, on_epoch_end: Callable[["Trainer", dict], None]):
        self._fn = on_epoch_end

    def on_epoch_end(self, trainer, logs):
        self._fn(trainer, logs)


BatchOrder = Callable[[int, int], np.ndarray]


#: optimizer steps between two flushes of subnormal weights and optimizer state
FLUSH_EVERY = 64


def flush_subnormal_state(net: MLP, opt: Optimizer) -> None:
    """Zero the subnormal values of the weights and the optimizer's state. Adam (with weight
    decay or an L2 penalty, or once a unit's gradient stops) drives the weights of always-0 inputs
    (MNIST's border pixels) and their moments down through the subnormal range, where every later
    step computes on them through slow microcode assists (see
    :func:`mlplab.optimizers.flush_subnormals`): measured on MNIST 784-256-10 with Adam and weight
    decay 1e-4, 20,000 subnormal first-layer weights from the fifth epoch on, and slower epochs.
    Every :data:`FLUSH_EVERY` steps, a few passes over the parameters keep them out of it."""
    for p in net.parameters():
        flush_subnormals(p)
    opt.flush_subnormals()


def rollback_point(opt: Optimizer, *rngs: np.random.Generator) -> tuple:
    """What an epoch changes besides the weights and its counters: the optimizer's state (a
    copy) and the states of ``rngs`` (shuffling, dropout). A rejected (diverged) epoch restores
    it with :func:`roll_back`, which :class:`Trainer` and the estimator both do."""
    return opt.state_dict(), [r.bit_generator.state for r in rngs]


def roll_back(point: tuple, opt: Optimizer, *rngs: np.random.Generator) -> None:
    """Undo a rejected epoch's optimizer steps and draws (the caller restores the weights):
    without it the optimizer kept the diverged epoch's moments, NaN or huge, and its step count,
    so a retry at a smaller learning rate started from them."""
    opt_state, rng_states = point
    opt.load_state_dict(*opt_state)
    for rng, state in zip(rngs, rng_states):
        rng.bit_generator.state = state


def divergence_error(what: str, epoch: int, lr: float) -> DivergenceError:
    """The error of a training whose ``what`` (e.g. "loss became non-finite") happened at
    ``epoch`` (1-based) with learning rate ``lr``: :class:`Trainer`'s, and that of the training
    loops an experiment runs itself (PyTorch, scikit-learn, stacked one-vs-rest neurons)."""
    return DivergenceError(f"{what} at epoch {epoch} (learning rate {lr:g}); try a smaller learning rate", epoch)


def divergence_what(loss: float | None) -> str:
    """What diverged, as :func:`divergence_error` says it: the epoch's ``loss`` (non-finite, or
    exploded past the divergence factor: :func:`loss_exploded`) or, for ``None``, the weights
    (non-finite or too large: :meth:`MLP.finite_weights`). :class:`Trainer`'s wording, which the
    PyTorch and scikit-learn reference cells reuse so that a divergence reads the same."""
    if loss is None:
        return "weights became non-finite or too large"
    return "loss became non-finite" if not math.isfinite(loss) else f"loss exploded to {loss:.4g}"


def loss_exploded(loss: float, first_loss: float, factor: float | None) -> bool:
    """The divergence guard's loss rule: the epoch's ``loss`` is more than ``factor`` times the
    first epoch's ``first_loss`` (floored at 1e-12, so a first loss of 0 is not a yardstick
    every later loss exceeds); ``factor=None`` disables it. :class:`Trainer`'s rule, which the
    PyTorch and scikit-learn reference cells apply too: a runaway learning rate diverges for all."""
    return factor is not None and loss > factor * max(first_loss, 1e-12)


def quiet_fp() -> np.errstate:
    """NumPy's floating-point warnings off, for a training loop: overflow in a diverging epoch
    is reported once, by the divergence checks, not by NumPy's warnings as well. Only what
    would warn is silenced: a caller's ``np.errstate(all="raise")`` still raises."""
    return np.errstate(**{kind: "ignore" for kind, mode in np.geterr().items() if mode == "warn"})


@dataclass(frozen=True)
class _TrainerStep:
    """A bound step (:meth:`MLP.bind_step`) with its label buffer and bound loss."""

    xb: np.ndarray
    yb: np.ndarray
    out: np.ndarray
    grad: np.ndarray
    forward: tuple[Callable[[], object], ...]
    backward: tuple[Callable[[], object], ...]
    loss: Callable[[], float]
    correct: Callable[[], int]  #: how many rows of ``out`` predict their label ``yb``

    def forward_loss(self) -> float:
        """Run the forward calls and the loss: ``out`` and ``grad`` filled; returns the loss."""
        for call in self.forward:
            call()
        return self.loss()

    def run_backward(self) -> None:
        for call in self.backward:
            call()


def bind_training_step(net: MLP, xb: np.ndarray, yb: np.ndarray, lr: float | None) -> _TrainerStep | None:
    """:meth:`MLP.bind_step` on the minibatch buffers ``xb``, ``yb``, with the loss bound too
    (its target buffer is the last layer's ``"target"``). ``None`` if the network cannot be bound."""
    step = net.bind_step(xb, lr)
    if step is None:
        return None
    out = step.out
    tbuf = net.layers[-1]._buffer("target", out.shape, net.dtype)
    if out.shape[1] > 1:  # labels_from_output's argmax, into buffers
        pred = net.layers[-1]._buffer("pred", (out.shape[0],), np.intp)
        hit = np.empty(out.shape[0], dtype=bool)
        argmax, equal, count = out.argmax, np.equal, np.count_nonzero

        def correct() -> int:
            argmax(axis=1, out=pred)
            return int(count(equal(pred, yb, out=hit)))
    else:
        def correct() -> int:
            return int(np.count_nonzero(net.labels_from_output(out) == yb))
    return _TrainerStep(xb, yb, out, step.grad, step.forward, step.backward,
                        net.loss.bind_value_and_grad(out, yb, step.grad, tbuf), correct)


class Trainer:
    """Trains an :class:`~mlplab.network.MLP`.

    Parameters
    ----------
    net : MLP
    optimizer : name, ``{"name": ..., **hyperparameters}`` or an :class:`Optimizer`
    lr : float, base learning rate (overrides the optimizer spec's)
    batch_size : int or None; ``None`` (or 0) is full-batch gradient descent
    schedule : learning-rate schedule spec (default constant)
    seed : seeds the per-epoch shuffling (default: the network's seed)
    shuffle : reshuffle the training set each epoch
    drop_last : skip a final partial minibatch (the textbook's generator did)
    batch_order : ``f(epoch, n) -> index array`` replacing the built-in shuffling
    train_metrics : ``"running"`` (mean over the epoch's minibatches, free),
        ``"full"`` (a pass over the whole training set after each epoch) or ``"none"`` (not
        measured: the history's loss and accuracy are ``None``; early stopping and
        ``reduce_on_plateau`` then need validation data). Every loss measured, and watched by
        early stopping, ``reduce_on_plateau`` and the divergence guard, is without the L2
        penalty (see :class:`History`)
    divergence_factor : stop when the epoch loss exceeds this multiple of the first epoch's
        loss (``None`` disables); a non-finite loss, or weights gone non-finite (or too large:
        :meth:`MLP.finite_weights`) by the end of an epoch, always stops training
        (:class:`~mlplab.errors.DivergenceError`). The diverged epoch is rejected whole: the
        network gets back the weights it had before it (at the start of ``fit``, for an
        interrupted epoch ``fit`` resumed), the optimizer its state (moments and step count)
        and the shuffling and dropout generators theirs, and ``epochs_done`` does not count
        it: a retry (at a smaller ``base_lr``, say) starts where the rejected epoch started
    """

    def __init__(
        self,
        net: MLP,
        optimizer: str | dict | Optimizer = "sgd",
        lr: float | None = None,
        batch_size: int | None = 100,
        schedule: str | dict | Schedule | None = None,
        seed: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        batch_order: BatchOrder | None = None,
        train_metrics: str = "running",
        divergence_factor: float | None = 1e4,
        callbacks: Iterable[Callback] = (),
    ):
        self.net = net
        if isinstance(optimizer, Optimizer):
            self.optimizer = optimizer
            if lr is not None:
                self.optimizer.lr = float(lr)
        else:
            self.optimizer = get_optimizer(optimizer, net.parameters(), lr=lr)
        self.base_lr = self.optimizer.lr
        self.schedule = schedule if isinstance(schedule, Schedule) else get_schedule(schedule)
        if batch_size is not None and int(batch_size) < 0:
            raise ConfigError(f"batch size must be positive (or 0 for full batch), got {batch_size}")
        self.batch_size = int(batch_size) if batch_size else None
        if train_metrics not in ("running", "full", "none"):
            raise ConfigError(f"train_metrics must be running, full or none, got {train_metrics!r}")
        self.train_metrics = train_metrics
        self.seed = net.seed if seed is None else int(seed)
        self.rng = rng_for(self.seed, STREAM_SHUFFLE)
        self.shuffle, self.drop_last, self.batch_order = bool(shuffle), bool(drop_last), batch_order
        self.divergence_factor = divergence_factor
        self.callbacks = list(callbacks)
        self.history = History()
        self.epochs_done = 0
        self.stop_training = False
        self.stop_reason: str | None = None
        self.restored_epoch: int | None = None
        #: set from a signal handler: stop after the current minibatch
        self.interrupt_requested = False
        self._resume: dict[str, Any] | None = None  # position inside an interrupted epoch
        self._stopped_in_checkpoint = False  # the state loaded had stopped early: the next fit ends at once
        self._first_loss: float | None = None
        #: run minibatches through bound calls (:meth:`MLP.bind_step`): the same
        #: computation, bit for bit, with less Python per step; ``False`` calls the layers
        self.bind_steps = True

    # -- the loop --------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> History:
        """Train until ``epochs`` epochs in total have run (counting earlier ``fit`` calls)."""
        net = self.net
        X, y = self.validate(X, y, epochs)
        n = X.shape[0]
        bs = self.batch_size or n
        if X_val is not None:
            X_val, y_val = self.validate(X_val, y_val, epochs, what="validation")
        self.check_monitored(validation=X_val is not None)

        # one batch of everything: the order cannot matter, so skip the shuffle and the copy
        full_batch = bs == n and self.batch_order is None
        # a new fit asks for more epochs: an earlier early stop does not veto them (its callback
        # keeps its best value and patience count, so it stops again unless the loss improves);
        # a fit continuing a checkpoint written as its run stopped (then killed) stops there too
        if not self._stopped_in_checkpoint:
            self.stop_training, self.stop_reason = False, None
        self._stopped_in_checkpoint = False
        for cb in self.callbacks:
            cb.on_train_begin(self)
        good_weights = net.get_weights()
        with quiet_fp():
            return self._loop(X, y, epochs, X_val, y_val, bs, full_batch, good_weights)

    def check_monitored(self, validation: bool) -> None:
        """Refuse early stopping or a plateau schedule watching a loss this run does not measure:
        the training loss and accuracy with ``train_metrics="none"``, the validation ones without
        validation data. Before anything runs: :meth:`fit` calls it (a caller writing files
        before it should call it first too)."""
        unmeasured, remedies = set(), []
        if self.train_metrics == "none":
            unmeasured |= {"loss", "accuracy"}
            remedies.append("measure the training loss (train_metrics 'running' or 'full')")
        if not validation:
            unmeasured |= {"val_loss", "val_accuracy"}
            remedies.append("give validation data")
        fix = " or ".join(remedies)
        for cb in self.callbacks:
            if isinstance(cb, EarlyStopping) and cb.monitor in unmeasured:
                raise ConfigError(f"early stopping monitors {cb.monitor!r}, which this run does not measure: {fix}")
        if self.schedule.observes and {"loss", "val_loss"} <= unmeasured:
            raise ConfigError(f"schedule {self.schedule.name!r} watches the loss, which this run does not "
                              f"measure (train_metrics 'none' and no validation data): {fix}")

    def scheduled_lr(self, epoch: int) -> float:
        """The schedule's learning rate for ``epoch`` (0-based); a ConfigError naming the schedule
        if it is negative or not finite (a negative rate would climb the loss)."""
        lr = self.schedule(epoch, self.base_lr)
        if not 0 <= lr < math.inf:  # NaN fails this too
            raise ConfigError(f"schedule {self.schedule.name!r} gave the learning rate {lr!r} for epoch "
                              f"{epoch + 1}; a learning rate must be a finite number >= 0")
        return lr

    def validate(self, X: np.ndarray, y: np.ndarray, epochs: int,
                 what: str = "training") -> tuple[np.ndarray, np.ndarray]:
        """Check data and settings before anything runs (or is written)."""
        X = self.net._as_input(X)
        y = self.net._as_labels(y, X.shape[0], what)  # integer class indices in range
        if int(epochs) < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        n = X.shape[0]
        bs = self.batch_size or n
        if what == "training" and bs > n:
            raise ConfigError(f"batch size {bs} is larger than the training set ({n} samples)")
        if what == "training" and self._resume is not None:
            self._check_resume_position(n, bs)
        return X, y

    def _check_resume_position(self, n: int, bs: int) -> None:
        """The interrupted epoch :meth:`fit` continues fits ``n`` training rows: its minibatch order
        (the built-in shuffle's: each row once) and the minibatch it stopped after, which is never
        the epoch's last (resumed on other data, or a hand-edited checkpoint?)."""
        order, m = self._resume["order"], n
        if order is not None:
            _checked_order(order, n, "the interrupted epoch's minibatch order")
            if self.batch_order is None and not (len(order) == n and (np.bincount(order, minlength=n) == 1).all()):
                raise ConfigError(f"the interrupted epoch's minibatch order must list each of the {n} training "
                                  f"rows once, got {len(order)} row indices")
            m = len(order)
        batches = len(range(0, m - bs + 1 if self.drop_last else m, bs))
        if not 1 <= self._resume["batch"] < batches:
            raise ConfigError(f"the interrupted epoch's position, after minibatch {self._resume['batch']}, does not "
                              f"fit its {batches} minibatches")

    def _rollback_point(self) -> tuple:
        return rollback_point(self.optimizer, self.rng, self.net.dropout_rng)

    def _roll_back(self, point: tuple) -> None:
        roll_back(point, self.optimizer, self.rng, self.net.dropout_rng)

    def _loop(self, X, y, epochs, X_val, y_val, bs, full_batch, good_weights) -> History:
        net = self.net
        start_state = self._rollback_point()
        while self.epochs_done < int(epochs) and not self.stop_training:
            epoch = self.epochs_done  # 0-based
            lr = self.scheduled_lr(epoch)
            self.optimizer.lr = lr
            try:
                loss, acc, secs = self._run_epoch(X, y, bs, full_batch, epoch)
            except DivergenceError:  # a minibatch loss was not finite: reject the epoch whole, as
                net.set_weights(good_weights)  # _check_divergence does (epochs_done has not counted it)
                self._roll_back(start_state)
                raise
            self.epochs_done += 1
            logs: dict[str, Any] = {"epoch": self.epochs_done, "loss": loss, "accuracy": acc,
                                    "lr": lr, "time_s": secs}
            if self.train_metrics == "full":
                logs["loss"], logs["accuracy"] = self._evaluate(X, y)
            if X_val is not None:
                logs["val_loss"], logs["val_accuracy"] = self._evaluate(X_val, y_val)
            try:
                self._check_divergence(logs["loss"], good_weights, logs.get("val_loss"))
            except DivergenceError:
                self._roll_back(start_state)
                raise
            good_weights = net.get_weights()
            start_state = self._rollback_point()
            monitored = logs["loss"] if logs.get("val_loss") is None else logs["val_loss"]
            if monitored is not None:  # finite: checked above
                self.schedule.observe(monitored)
            for cb in self.callbacks:  # may add columns to logs or ask to stop
                cb.on_epoch_end(self, logs)
            self.history.append(logs)
            for cb in self.callbacks:
                cb.on_epoch_recorded(self, logs)
            if self.interrupt_requested and self.epochs_done < int(epochs):
                raise TrainingInterrupted(f"training interrupted after epoch {self.epochs_done}")
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _run_epoch(self, X, y, bs, full_batch, epoch) -> tuple[float | None, float | None, float]:
        net, opt = self.net, self.optimizer
        n = X.shape[0]
        t0 = time.perf_counter()
        if self._resume is not None:  # continue an interrupted epoch
            r = self._resume
            order, start_batch = r["order"], r["batch"]
            self._resume = None  # (validate checked that the position fits the data)
            loss_sum, correct, seen, t0 = r["loss_sum"], r["correct"], r["seen"], t0 - r["elapsed"]
        else:
            order = None if full_batch else self._epoch_order(epoch, n)
            start_batch, loss_sum, correct, seen = 0, 0.0, 0, 0
        m = n if order is None else len(order)
        starts = list(range(0, m - bs + 1 if self.drop_last else m, bs))
        running = self.train_metrics == "running"
        pre = opt.prescale()  # constant within an epoch (the schedule sets lr between epochs)
        # optimizers with decayed state (momentum, Adam, RMSprop) flush subnormals at every
        # FLUSH_EVERY-th step they count (the count is saved: a resumed run flushes where the
        # uninterrupted one did); plain SGD, whose weights decay too slowly to get there, never
        flush = bool(opt.decayed_slots)
        # steps bound to the minibatch buffers, one per batch size (the full one and the last),
        # built at the first minibatch of that size in this epoch (False: cannot be bound)
        steps: dict[int, Any] = {}
        bound = None
        for b in range(start_batch, len(starts)):
            s = starts[b]
            if order is None:
                Xb, yb = X, y
            else:
                idx = order[s:s + bs]
                k = len(idx)
                bound = steps.get(k)
                if bound:
                    Xb, yb = bound.xb, bound.yb
                else:
                    Xb = net.layers[0]._buffer("xb", (k, X.shape[1]), net.dtype)
                    yb = net.layers[0]._buffer("yb", (k,), np.int64)
                X.take(idx, axis=0, out=Xb, mode="clip")  # "raise" would buffer the copy
                y.take(idx, out=yb, mode="clip")
                if bound is None:
                    bound = steps[k] = self.bind_steps and self._bind_step(Xb, yb, pre) or False
            k = Xb.shape[0]
            if bound:
                value = bound.forward_loss()
                out, grad = bound.out, bound.grad
            else:
                out = net.forward(Xb, training=True)
                grad = net.layers[-1]._buffer("dout", out.shape, net.dtype)
                tbuf = net.layers[-1]._buffer("target", out.shape, net.dtype)
                value = net.loss.value_and_grad(out, yb, grad, target_buf=tbuf)
            if not math.isfinite(value):
                raise self._diverged(epoch + 1, value)
            if running:
                loss_sum += value * k
                correct += bound.correct() if bound else int(np.count_nonzero(net.labels_from_output(out) == yb))
            seen += k
            if pre is not None:  # plain SGD: fold lr into the (tiny) output gradient, fuse the step
                grad *= pre
                if bound:
                    bound.run_backward()
                else:
                    net.backward_step(grad, pre, overwrite_grad=True)  # grad is the loop's own
                opt.count_step()
            else:
                if bound:
                    bound.run_backward()
                else:
                    net.backward(grad, overwrite_grad=True)
                opt.step(net.gradients())
            if flush and opt.t % FLUSH_EVERY == 0:
                flush_subnormal_state(net, opt)
            if self.interrupt_requested and b + 1 < len(starts):
                self._resume = {"order": order, "batch": b + 1, "loss_sum": loss_sum, "correct": correct,
                                "seen": seen, "elapsed": time.perf_counter() - t0}
                raise TrainingInterrupted(
                    f"training interrupted in epoch {epoch + 1} after minibatch {b + 1} of {len(starts)}")
        secs = time.perf_counter() - t0
        if not running or seen == 0:
            return None, None, secs  # not measured
        return loss_sum / seen, correct / seen, secs

    def _bind_step(self, xb: np.ndarray, yb: np.ndarray, lr: float | None) -> "_TrainerStep | None":
        return bind_training_step(self.net, xb, yb, lr)

    def _epoch_order(self, epoch: int, n: int) -> np.ndarray:
        if self.batch_order is not None:
            return _checked_order(self.batch_order(epoch, n), n, f"batch_order for epoch {epoch + 1}")
        if self.shuffle:
            return self.rng.permutation(n)
        return np.arange(n)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean loss, accuracy) of the current network on ``(X, y)``, in inference mode. The
        loss is the data loss alone, without the L2 penalty: the one the history records and
        early stopping, plateau schedules and the divergence guard watch. Labels are checked as
        :meth:`fit` checks them (ConfigError for one outside the classes)."""
        X = self.net._as_input(X)
        return self._evaluate(X, self.net._as_labels(y, X.shape[0]))

    def _evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """:meth:`evaluate` on data :meth:`validate` has checked (the loops' per-epoch passes)."""
        out = self.net.decision_function(X)
        loss = self.net.loss.value(out, y)
        acc = float(np.mean(self.net.labels_from_output(out) == y))
        return loss, acc

    def _diverged(self, epoch: int, value: float | None) -> DivergenceError:
        """The error for ``epoch`` (1-based) whose loss ``value`` diverged (``None``: its weights)."""
        return divergence_error(divergence_what(value), epoch, self.optimizer.lr)

    def _check_divergence(self, loss: float | None, good_weights: list[np.ndarray],
                          val_loss: float | None = None) -> None:
        """Reject the epoch just counted in ``epochs_done`` if its training or validation loss is
        non-finite, the training loss exploded (``divergence_factor``), or the weights are no
        longer finite (:meth:`MLP.finite_weights`; the losses are measured before each step, so
        the epoch's last step could diverge unseen): restore ``good_weights``, take the epoch
        back off ``epochs_done`` (the trainer's state then matches its history and weights) and
        raise :class:`DivergenceError`. A loss not measured (``None``, or any ``loss`` with
        ``train_metrics="none"``) is not checked: the per-minibatch checks still catch
        non-finite losses, the weight check a last step gone wrong."""
        if self.train_metrics == "none":
            loss = None
        bad = next((v for v in (loss, val_loss) if v is not None and not math.isfinite(v)), None)
        diverged = bad is not None or not self.net.finite_weights()
        if not diverged and loss is not None and self.divergence_factor is not None:
            if self._first_loss is None:
                self._first_loss = max(loss, 1e-12)
            if loss_exploded(loss, self._first_loss, self.divergence_factor):
                bad, diverged = loss, True
        if diverged:
            self.net.set_weights(good_weights)  # never leave a NaN model behind
            epoch = self.epochs_done
            self.epochs_done -= 1
            raise self._diverged(epoch, bad)

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, arrays) restoring the training state exactly: a snapshot, whose
        arrays are copies that later training does not change (see :meth:`Optimizer.state_dict
        <mlplab.optimizers.Optimizer.state_dict>`)."""
        opt_meta, opt_arrays = self.optimizer.state_dict()
        meta: dict[str, Any] = {
            "epochs_done": self.epochs_done,
            "base_lr": self.base_lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle_rng": self.rng.bit_generator.state,
            "dropout_rng": self.net.dropout_rng.bit_generator.state,
            "optimizer": opt_meta,
            "schedule": {"config": self.schedule.config(), "state": self.schedule.state()},
            "history": self.history.as_dict(),
            "first_loss": self._first_loss,
            "resume": None,
            "stop_reason": self.stop_reason if self.stop_training else None,  # stopped early, in fit
        }
        arrays = {f"optimizer/{k}": v for k, v in opt_arrays.items()}
        meta["callbacks"] = {}
        for key, cb in self._keyed_callbacks():
            state = cb.checkpoint_state()
            if state is not None:
                meta["callbacks"][key] = state[0]
                arrays.update({f"callback/{key}/{k}": v for k, v in state[1].items()})
        if self._resume is not None:
            r = self._resume
            meta["resume"] = {k: r[k] for k in ("batch", "loss_sum", "correct", "seen", "elapsed")}
            arrays["resume/order"] = r["order"].copy() if r["order"] is not None else np.zeros(0, np.int64)
            meta["resume"]["full_batch"] = r["order"] is None
        return meta, arrays

    def load_state_dict(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`'s result. All or nothing: everything is read and checked
        before the trainer changes (the optimizer's and the schedule's loads check their own;
        the schedule's is undone if the optimizer's fails), so an error leaves it as it was."""
        def table(v: Any, what: str) -> dict:
            if not isinstance(v, dict):
                raise ConfigError(f"{what} must be a table, got {type(v).__name__}")
            return v

        def count(v: Any, what: str) -> int:  # a non-negative integer (JSON: not a float, not a bool)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"{what} must be a non-negative integer, got {v!r}")
            return int(v)

        def real(v: Any, what: str, *, minimum: float = -math.inf) -> float:
            if (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                    or not math.isfinite(v) or v < minimum):
                raise ConfigError(f"{what} must be a finite number >= {minimum}, got {v!r}")
            return float(v)

        table(meta, "trainer state")
        epochs_done = count(meta["epochs_done"], "epochs_done")
        base_lr = real(meta["base_lr"], "base_lr", minimum=0.0)
        rng_states = ((self.rng, table(meta["shuffle_rng"], "shuffle_rng")),
                      (self.net.dropout_rng, table(meta["dropout_rng"], "dropout_rng")))
        for rng, state in rng_states:  # a bad state raises here, on a throwaway generator
            type(rng.bit_generator)().state = state
        saved_history = table(meta["history"], "history")
        for key, col in saved_history.items():
            if not isinstance(col, list) or len(col) != epochs_done:
                raise ConfigError(f"history column {key!r} must be a list of {epochs_done} values "
                                  f"(one per epoch done), got {type(col).__name__}"
                                  f"{f' of {len(col)}' if isinstance(col, list) else ''}")
        for key, col in saved_history.items():  # the columns callbacks add too: history.csv writes them all
            low, high = _HISTORY_RANGES.get(key, (-math.inf, math.inf))
            for v in col:
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                      or not math.isfinite(v) or not low <= v <= high):
                    raise ConfigError(f"history column {key!r} holds {v!r}, not a finite number"
                                      f"{'' if math.isinf(low) else f' in [{low:g}, {high:g}]'}")
        epochs = saved_history.get("epoch", [])
        if epochs != list(range(1, epochs_done + 1)) or not all(isinstance(v, int) for v in epochs):
            raise ConfigError(f"history epochs must be 1..{epochs_done}")
        history = History.from_dict(saved_history)
        first_loss = meta.get("first_loss")
        if first_loss is not None:  # the divergence guard's yardstick: a positive loss (see _check_divergence)
            real(first_loss, "first_loss", minimum=1e-12)
        stop_reason = meta.get("stop_reason")  # (files from before it was saved: none)
        if stop_reason is not None and not isinstance(stop_reason, str):
            raise ConfigError(f"stop_reason must be text, got {stop_reason!r}")
        resume = None
        r = meta.get("resume")
        if r:
            table(r, "resume")
            if not isinstance(r.get("full_batch", False), bool):
                raise ConfigError(f"resume.full_batch must be true or false, got {r.get('full_batch')!r}")
            order = None
            if not r.get("full_batch"):
                order = np.asarray(arrays["resume/order"])
                if order.ndim != 1 or order.dtype.kind not in "iu":
                    raise ConfigError(f"resume/order must be a 1-D integer array, got {order.dtype} {order.shape}")
                order = order.astype(np.int64)
            resume = {"order": order, "batch": count(r["batch"], "resume.batch"),
                      "loss_sum": real(r["loss_sum"], "resume.loss_sum"),
                      "correct": count(r["correct"], "resume.correct"), "seen": count(r["seen"], "resume.seen"),
                      "elapsed": real(r["elapsed"], "resume.elapsed", minimum=0.0)}
            if resume["correct"] > resume["seen"]:
                raise ConfigError(f"resume.correct ({resume['correct']}) is more than resume.seen ({resume['seen']})")
        count(table(meta["optimizer"], "optimizer")["t"], "optimizer.t")
        table(table(meta["schedule"], "schedule")["state"], "schedule.state")
        saved_callbacks = meta.get("callbacks") or {}  # (files from before callbacks were saved: none)
        table(saved_callbacks, "callbacks")
        load_callbacks = []
        for key, cb in self._keyed_callbacks():
            if key in saved_callbacks:
                prefix = f"callback/{key}/"
                cb_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                load_callbacks.append(cb.checked_checkpoint_state(saved_callbacks[key], cb_arrays, self))
        schedule_before = self.schedule.state()
        self.schedule.load_state(meta["schedule"]["state"])
        try:
            self.optimizer.load_state_dict(meta["optimizer"], {
                k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")})
        except BaseException:
            self.schedule.load_state(schedule_before)
            raise
        self.epochs_done, self.base_lr = epochs_done, base_lr
        for rng, state in rng_states:
            rng.bit_generator.state = state
        self.history, self._first_loss, self._resume = history, first_loss, resume
        self.stop_training = self._stopped_in_checkpoint = stop_reason is not None
        self.stop_reason = stop_reason
        for load in load_callbacks:
            load()

    def _keyed_callbacks(self) -> list[tuple[str, Callback]]:
        """The callbacks under the keys their checkpoint state is saved by: class name and
        rank among the callbacks of that class (``EarlyStopping#0``), which do not depend on
        what other callbacks a run has (a progress bar, say)."""
        seen: dict[str, int] = {}
        keyed = []
        for cb in self.callbacks:
            name = type(cb).__name__
            keyed.append((f"{name}#{seen.get(name, 0)}", cb))
            seen[name] = seen.get(name, 0) + 1
        return keyed


def _checked_order(order: Any, n: int, what: str) -> np.ndarray:
    """``order`` as int64 row indices, refused unless every one is an integer in ``[0, n)``.
    The minibatch copies clip indices for speed (``take(mode="clip")``), so an index out of
    range would otherwise train on another row without a word. One pass per epoch."""
    arr = np.asarray(order)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ConfigError(f"{what} must be a 1-D array of integer row indices, got "
                          f"{arr.ndim}-D {arr.dtype} values")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ConfigError(f"{what} has row indices in [{arr.min()}, {arr.max()}]; "
                          f"the training set has rows 0 to {n - 1}")
    return arr.astype(np.int64, copy=False)


def fit(net: MLP, X: np.ndarray, y: np.ndarray, epochs: int, **kwargs: Any) -> History:
    """Convenience wrapper: ``Trainer(net, **kwargs).fit(X, y, epochs, X_val=..., y_val=...)``."""
    X_val = kwargs.pop("X_val", None)
    y_val = kwargs.pop("y_val", None)
    return Trainer(net, **kwargs).fit(X, y, epochs, X_val=X_val, y_val=y_val)


def accuracy(net: MLP, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(net.predict(X) == np.asarray(y)))
