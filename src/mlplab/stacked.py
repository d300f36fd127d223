"""Several networks of the same shape trained side by side as one stacked model.

Sweep cells that share their data and architecture but differ in learning rate,
initialisation or seed do the same work on the same inputs: the first layer's
``X @ W`` and ``X.T @ dZ`` read the whole input for every model. Stacked, the first layers
of the ``K`` models become one wide layer, ``W0 = [W0_1 | W0_2 | ... | W0_K]`` of shape
``(n_features, K * h1)``, so one matrix multiplication serves all of them (for MNIST's 784
inputs and narrow hidden layers it costs little more than one model's). The layers after it
are each model's own, run on its column block of the wide hidden activation.

Each network keeps being a normal :class:`~mlplab.network.MLP`: its first layer's ``W`` (and
``b``) are views into the wide arrays, so predicting, saving, callbacks and run folders work
on it unchanged while it trains. Each model has its own :class:`~mlplab.training.Trainer`
(history, schedule, callbacks, checkpoint state); :class:`StackedTrainer` drives them.

Exactness: every operation a model sees is the one it would see alone, on the same values
(bias sums are taken over contiguous copies). Whether the wide products give each model's
column block the bits of its own products depends on the BLAS kernels of the CPU
(:func:`blocks_exact` probes it): where they do, the stacked results are bit-identical to
separate training on one BLAS thread (tested on such a machine); where they do not (OpenBLAS's
AVX2 kernels on a 2-core AMD EPYC, with NumPy's and with SciPy's build, reach some columns of a
wide product through other kernels than a narrow one), they agree within float32 rounding
(tested everywhere).

What stacks (:func:`stack_problem`): plain SGD (no momentum, no weight decay), no dropout, no
L2, the same sizes, activations (the hidden one with the same parameters, e.g. a leaky ReLU's
slope: the wide layer applies one activation to every block), loss family, dtype, batch size
and minibatch order. Learning rate, schedule, initial weights, seed (full batch) and the loss
denominator may differ; so may ``shared_bias``.

A model that diverges (as :class:`~mlplab.training.Trainer` detects it: a non-finite loss, an
exploding epoch loss, weights no longer finite) is frozen (its last good weights restored, the
epoch not counted, its gradients zero from then on) and reported as diverged; the others train on.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from mlplab.blas import gemv
from mlplab.errors import ConfigError, DivergenceError, TrainingInterrupted
from mlplab.layers import ActivationLayer, Dense
from mlplab.network import MLP
from mlplab.optimizers import SGD
from mlplab.training import Trainer, quiet_fp


def blocks_exact(n_rows: int, n_features: int, width: int, k: int, dtype=np.float32, seed: int = 0) -> bool:
    """Whether this BLAS, at its current thread count, computes the products of a stack of ``k``
    first layers of ``width`` units on ``(n_rows, n_features)`` inputs (the forward product onto
    the bias, and the fused SGD step) with every model's column block bit-identical to that
    model's own products: the condition for stacked training to equal training alone bit for bit.
    A probe on random values; it says nothing about rounding, only about identity."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(dtype)
    dz = rng.normal(size=(n_rows, k * width)).astype(dtype)
    W = rng.normal(size=(n_features, k * width)).astype(dtype)
    b = rng.normal(size=k * width).astype(dtype)
    wide = Dense(n_features, k * width, dtype)
    wide.W[...], wide.b[...] = W, b
    Z = wide.forward(X, training=True).copy()
    wide.backward_step(dz, need_dx=False, update_bias=False)
    for j in range(k):
        blk = slice(j * width, (j + 1) * width)
        alone = Dense(n_features, width, dtype)
        alone.W[...], alone.b[...] = W[:, blk], b[blk]
        if not np.array_equal(alone.forward(X, training=True), Z[:, blk]):
            return False
        alone.backward_step(np.ascontiguousarray(dz[:, blk]), need_dx=False, update_bias=False)
        if not np.array_equal(alone.W, wide.W[:, blk]):
            return False
    return True


def stack_problem(trainers: Sequence[Trainer]) -> str | None:
    """Why these trainers cannot train as one stack (``None``: they can)."""
    if len(trainers) < 1:
        return "no models"
    first = trainers[0]
    ref = first.net
    for tr in trainers:
        net = tr.net
        if not isinstance(tr.optimizer, SGD) or tr.optimizer.prescale() is None:
            return "only plain SGD (no momentum, no weight decay) stacks"
        if net.dropout or net.l2:
            return "dropout and L2 do not stack"
        if len(net.sizes) < 2 or net.sizes != ref.sizes:
            return f"sizes differ: {net.sizes} vs {ref.sizes}"
        if (net.describe(), net.dtype) != (ref.describe(), ref.dtype):
            return f"architectures differ: {net.describe()} vs {ref.describe()}"
        # describe() names the activations only; the wide layer runs the first model's hidden
        # activation for every block, so its parameters must agree too
        act, ref_act = net.config()["hidden_activation"], ref.config()["hidden_activation"]
        if act != ref_act:
            return f"hidden activation parameters differ: {act} vs {ref_act}"
        if tr.batch_size != first.batch_size or tr.drop_last != first.drop_last:
            return "batch sizes differ"
        if tr.batch_order is not None or first.batch_order is not None:
            return "custom batch orders do not stack"
        if tr.train_metrics != first.train_metrics:
            return "train_metrics differ"
        if tr.epochs_done != first.epochs_done or tr._resume is not None:
            return "the models are at different points of training"
    if first.batch_size is not None:  # minibatches: every model must see the same order
        states = {str(tr.rng.bit_generator.state) for tr in trainers}
        if len(states) > 1 or len({tr.shuffle for tr in trainers}) > 1:
            return "minibatch training stacks only with the same shuffling seed"
    return None


class StackedTrainer:
    """Train ``trainers`` (one per network) together; see the module docstring.

    ``trainers`` are ordinary :class:`~mlplab.training.Trainer` objects, each with its own
    network, learning rate, schedule and callbacks. After :meth:`fit` each trainer's history,
    epoch count and network are exactly what its own ``fit`` would have left (within rounding).
    """

    def __init__(self, trainers: Sequence[Trainer]):
        problem = stack_problem(trainers)
        if problem:
            raise ConfigError(f"these models cannot be trained as one stack: {problem}")
        self.trainers = list(trainers)
        self.nets = [tr.net for tr in self.trainers]
        ref = self.nets[0]
        self.K = len(self.nets)
        self.dtype = ref.dtype
        d0 = ref.dense_layers[0]
        self.h1 = d0.fan_out
        self.wide = Dense(d0.fan_in, self.K * self.h1, self.dtype)
        self.wide_act = ActivationLayer(ref.layers[1].activation, self.dtype) if len(ref.sizes) > 2 else None
        self.blocks = [slice(k * self.h1, (k + 1) * self.h1) for k in range(self.K)]
        self.frozen = [False] * self.K
        self.errors: list[DivergenceError | None] = [None] * self.K
        self.last_good: list[list[np.ndarray]] = []
        #: each network's own first-layer ``(W, b)`` while it computes with views of the stack
        self._own: list[tuple[np.ndarray, np.ndarray]] = []
        self.epochs_done = self.trainers[0].epochs_done  # fit() counts epochs in total, as Trainer.fit

    def _stack(self) -> None:
        """Copy every network's first layer into its block and make the layer a view of it,
        so the networks see their weights change while the stack trains. The layer's own
        arrays are kept for :meth:`_unstack`."""
        self._own = []
        for k, (tr, net) in enumerate(zip(self.trainers, self.nets)):
            layer = net.dense_layers[0]
            blk = self.blocks[k]
            self._own.append((layer.W, layer.b))
            self.wide.W[:, blk] = layer.W
            if layer.shared_bias:
                self.wide.b[blk] = layer.b[0]
                view_b = layer.b
            else:
                self.wide.b[blk] = layer.b
                view_b = self.wide.b[blk]
            layer.W, layer.b = self.wide.W[:, blk], view_b
            layer.params = (layer.W, layer.b)
            tr.optimizer.params = net.parameters()
        self.last_good = [net.get_weights() for net in self.nets]

    # ------------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> list[DivergenceError | None]:
        """Train every model to ``epochs`` epochs; returns per model ``None`` or its divergence."""
        lead = self.trainers[0]
        X, y = lead.validate(X, y, epochs)
        if X_val is not None:
            X_val, y_val = lead.validate(X_val, y_val, epochs, what="validation")
        for tr in self.trainers:
            tr.check_monitored(validation=X_val is not None)
        n = X.shape[0]
        bs = lead.batch_size or n
        self._stack()
        try:
            for tr in self.trainers:
                for cb in tr.callbacks:
                    cb.on_train_begin(tr)
            while self.epochs_done < int(epochs) and not all(self.frozen):
                with quiet_fp():
                    self._epoch(X, y, bs, X_val, y_val)
                self.epochs_done += 1
                if any(tr.interrupt_requested for tr in self.trainers) and self.epochs_done < int(epochs):
                    raise TrainingInterrupted(f"stacked training interrupted after epoch {self.epochs_done}")
        finally:
            self._unstack()
        for tr in self.trainers:
            for cb in tr.callbacks:
                cb.on_train_end(tr)
        return list(self.errors)

    def _unstack(self) -> None:
        """Give every network its first layer's own arrays back, holding the trained values, so
        each trains, predicts and saves on its own as if it had never been stacked. The very
        arrays it had before :meth:`_stack`: whatever held them (another trainer's optimizer
        built earlier, a ``parameters()`` list) keeps reaching the network's weights."""
        for tr, net, (W, b) in zip(self.trainers, self.nets, self._own):
            layer = net.dense_layers[0]
            W[...] = layer.W
            if b is not layer.b:  # a shared bias was the network's own array all along
                b[...] = layer.b
            layer.W, layer.b = W, b
            layer.params = (W, b)
            tr.optimizer.params = net.parameters()
        self._own = []

    def _epoch(self, X, y, bs, X_val, y_val) -> None:
        K, trainers, nets = self.K, self.trainers, self.nets
        lead = trainers[0]
        epoch = self.epochs_done  # 0-based
        self._sync_shared_biases()
        lrs = []
        for k, tr in enumerate(trainers):
            lr = tr.scheduled_lr(epoch)
            tr.optimizer.lr = lr
            lrs.append(0.0 if self.frozen[k] else lr)
        n = X.shape[0]
        full_batch = bs == n
        order = None if full_batch else lead._epoch_order(epoch, n)
        for tr in trainers[1:]:  # keep their shuffling streams in step (same seed: same draws)
            if order is not None:
                tr._epoch_order(epoch, n)
        m = n if order is None else len(order)
        starts = list(range(0, m - bs + 1 if lead.drop_last else m, bs))
        loss_sum, correct = np.zeros(K), np.zeros(K, dtype=np.int64)
        seen = 0
        running = lead.train_metrics == "running"
        t0 = time.perf_counter()
        wide = self.wide
        for s in starts:
            if order is None:
                Xb, yb = X, y
            else:
                idx = order[s:s + bs]
                Xb = wide._buffer("xb", (len(idx), X.shape[1]), self.dtype)
                yb = wide._buffer("yb", (len(idx),), np.int64)
                np.take(X, idx, axis=0, out=Xb, mode="clip")
                np.take(y, idx, out=yb, mode="clip")
            kb = Xb.shape[0]
            H = wide.forward(Xb, training=True)  # (kb, K*h1)
            if self.wide_act is not None:
                H = self.wide_act.forward(H, training=True)
            dH = wide._buffer("dH", H.shape, self.dtype)
            for k, net in enumerate(nets):
                blk = self.blocks[k]
                out = wide._buffer(f"h{k}", (kb, self.h1), self.dtype)
                np.copyto(out, H[:, blk])  # contiguous, as a lone model's hidden activation
                rest = net.layers[2:] if self.wide_act is not None else net.layers[1:]
                for layer in rest:
                    out = layer.forward(out, training=True)
                grad = net.layers[-1]._buffer("dout", out.shape, self.dtype)
                if self.frozen[k]:
                    grad[...] = 0
                else:
                    tbuf = net.layers[-1]._buffer("target", out.shape, self.dtype)
                    value = net.loss.value_and_grad(out, yb, grad, target_buf=tbuf)
                    if not math.isfinite(value):
                        self._freeze(k, trainers[k]._diverged(epoch + 1, value))
                        grad[...] = 0
                    else:
                        if running:
                            loss_sum[k] += value * kb
                            correct[k] += int(np.count_nonzero(net.labels_from_output(out) == yb))
                        grad *= lrs[k]  # plain SGD: fold the learning rate into the output gradient
                g = grad
                for i in range(len(rest) - 1, -1, -1):  # the SGD step fused in, as a lone model's
                    layer = rest[i]
                    g = layer.backward_step(g) if isinstance(layer, Dense) else layer.backward(g)
                dH[:, blk] = g
            if self.wide_act is not None:
                dH = self.wide_act.backward(dH)
            wide.backward_step(dH, need_dx=False, update_bias=False)
            for k, net in enumerate(nets):
                # each block's bias step on a contiguous copy of its gradient, so the sums run
                # in the order a lone model's do (BLAS's column sums depend on the width)
                blk = self.blocks[k]
                tmp = wide._buffer(f"sb{k}", (kb, self.h1), self.dtype)
                np.copyto(tmp, dH[:, blk])
                first = net.dense_layers[0]
                if first.shared_bias:  # one scalar: the sum over its units and samples
                    first.b[0] -= tmp.sum(dtype=self.dtype)
                    wide.b[blk] = first.b[0]
                else:  # first.b is a view of wide.b[blk]
                    gemv(tmp.T, first._ones(kb), first.b, alpha=-1.0, beta=1.0)
            for k, tr in enumerate(trainers):
                if not self.frozen[k]:
                    tr.optimizer.count_step()
            seen += kb
        secs = (time.perf_counter() - t0) / K  # each model's share of the stack's wall time
        for k, tr in enumerate(trainers):
            if self.frozen[k]:
                continue
            self._record(k, tr, loss_sum[k] / seen if running else None,
                         correct[k] / seen if running else None, lrs[k], secs, X, y, X_val, y_val)

    def _record(self, k, tr: Trainer, loss, acc, lr, secs, X, y, X_val, y_val) -> None:
        net = tr.net
        tr.epochs_done += 1
        logs: dict[str, Any] = {"epoch": tr.epochs_done, "loss": None if loss is None else float(loss),
                                "accuracy": None if acc is None else float(acc), "lr": lr, "time_s": secs}
        if tr.train_metrics == "full":
            logs["loss"], logs["accuracy"] = tr._evaluate(X, y)
        if X_val is not None:
            logs["val_loss"], logs["val_accuracy"] = tr._evaluate(X_val, y_val)
        try:
            tr._check_divergence(logs["loss"], self.last_good[k], logs.get("val_loss"))
        except DivergenceError as exc:  # (the epoch taken back off tr.epochs_done)
            self._freeze(k, exc)
            return
        self.last_good[k] = net.get_weights()
        monitored = logs["loss"] if logs.get("val_loss") is None else logs["val_loss"]
        if monitored is not None:  # finite: checked above
            tr.schedule.observe(monitored)
        for cb in tr.callbacks:
            cb.on_epoch_end(tr, logs)
        tr.history.append(logs)
        for cb in tr.callbacks:
            cb.on_epoch_recorded(tr, logs)
        if tr.stop_training:
            self._freeze(k, None)

    def _sync_shared_biases(self) -> None:
        """Copy each shared-bias network's scalar bias into its block of the wide bias. That
        scalar is the network's own array, not a view of the stack's, so a callback's
        ``set_weights`` (between epochs, or at the start of training) reaches only it; the steps
        update both alike, so the copy changes nothing otherwise."""
        for net, blk in zip(self.nets, self.blocks):
            first = net.dense_layers[0]
            if first.shared_bias:
                self.wide.b[blk] = first.b[0]

    def _freeze(self, k: int, error: DivergenceError | None) -> None:
        """Stop model ``k``: restore its last good weights; its gradients are zero from now on."""
        self.frozen[k] = True
        self.errors[k] = error
        self.nets[k].set_weights(self.last_good[k])
        layer = self.nets[k].dense_layers[0]
        if layer.shared_bias:
            self.wide.b[self.blocks[k]] = layer.b[0]


def train_stacked(trainers: Sequence[Trainer], X: np.ndarray, y: np.ndarray, epochs: int,
                  X_val: np.ndarray | None = None, y_val: np.ndarray | None = None
                  ) -> list[DivergenceError | None]:
    """Train the trainers' networks as one stack when :func:`stack_problem` allows, else one by one.

    Returns per trainer ``None`` or the :class:`~mlplab.errors.DivergenceError` that stopped it.
    """
    if len(trainers) > 1 and stack_problem(trainers) is None:
        return StackedTrainer(trainers).fit(X, y, epochs, X_val, y_val)
    errors: list[DivergenceError | None] = []
    for tr in trainers:
        try:
            tr.fit(X, y, epochs, X_val, y_val)
            errors.append(None)
        except DivergenceError as exc:
            errors.append(exc)
    return errors


def nets_of(trainers: Sequence[Trainer]) -> list[MLP]:
    return [tr.net for tr in trainers]
