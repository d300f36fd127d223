"""A rejected (diverged) epoch is undone whole in Trainer: weights, optimizer state and the
shuffling and dropout generators. A retry at a smaller rate then trains exactly as if the rejected
epoch had never run."""

import numpy as np
import pytest

from mlplab.errors import DivergenceError
from mlplab.network import MLP
from mlplab.training import LambdaCallback, Trainer


def _data(n=200):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 20)) * 10, rng.integers(0, 4, n)


def _trainer(optimizer, lr, **kw):
    net = MLP([20, 8, 4], "relu", "softmax", "cross_entropy", init="he", dtype="float32", seed=1, dropout=0.1)
    return Trainer(net, optimizer, lr=lr, batch_size=20, **kw)


OPTIMIZERS = [{"name": "sgd", "momentum": 0.9}, "adam", "rmsprop"]


def _opt_state(tr):
    meta, arrays = tr.optimizer.state_dict()
    return meta, {k: v.copy() for k, v in arrays.items()}


@pytest.mark.parametrize("bind_steps", [True, False])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=["sgd-momentum", "adam", "rmsprop"])
def test_a_retry_after_a_rejected_epoch_trains_as_if_it_never_ran(optimizer, bind_steps):
    X, y = _data()
    lr = 1e-3
    ref = _trainer(optimizer, lr)
    ref.fit(X, y, 1)
    opt_after_1 = _opt_state(ref)
    rng_after_1 = ref.rng.bit_generator.state, ref.net.dropout_rng.bit_generator.state
    ref.fit(X, y, 3)

    blown = []

    def blow_up(trainer, logs):  # once: epoch 2 runs at a rate that diverges
        if not blown:
            blown.append(trainer.base_lr)
            trainer.base_lr = 1e4

    tr = _trainer(optimizer, lr, callbacks=[LambdaCallback(blow_up)])
    tr.bind_steps = bind_steps
    with pytest.raises(DivergenceError, match="at epoch 2"):
        tr.fit(X, y, 3)
    assert tr.epochs_done == 1
    meta, arrays = tr.optimizer.state_dict()
    assert meta["t"] == opt_after_1[0]["t"] and meta.get("scales") == opt_after_1[0].get("scales")
    assert arrays.keys() == opt_after_1[1].keys()
    for key, a in arrays.items():
        assert np.array_equal(a, opt_after_1[1][key]), key
    assert (tr.rng.bit_generator.state, tr.net.dropout_rng.bit_generator.state) == rng_after_1

    tr.base_lr = lr  # the retry
    tr.fit(X, y, 3)
    assert tr.epochs_done == 3
    for a, b in zip(tr.net.get_weights(), ref.net.get_weights()):
        assert np.array_equal(a, b)
    assert tr.history.as_dict()["loss"] == ref.history.as_dict()["loss"]


def test_a_rejected_first_epoch_leaves_a_fresh_optimizer():
    X, y = _data()
    tr = _trainer({"name": "sgd", "momentum": 0.9}, 1e4)
    with pytest.raises(DivergenceError, match="at epoch 1"):
        tr.fit(X, y, 2)
    assert tr.optimizer.t == 0
    assert all(not a.any() for a in tr.optimizer.state_dict()[1].values())
