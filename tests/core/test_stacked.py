"""Stacked training (several models as one wide first layer) equals training them one by one."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mlplab.errors import ConfigError
from mlplab.network import MLP
from mlplab.stacked import StackedTrainer, blocks_exact, stack_problem, train_stacked
from mlplab.training import Trainer


def _data(n=300, d=20, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, :k].argmax(axis=1)).astype(np.int64)
    return X, y


def _pair(configs, trainer_kw, dtype="float32"):
    """Two identical sets of trainers (one to stack, one to train alone)."""
    out = []
    for _ in range(2):
        trs = []
        for c in configs:
            c = dict(c)
            lr = c.pop("lr")
            sched = c.pop("schedule", None)
            net = MLP(dtype=dtype, **c)
            trs.append(Trainer(net, "sgd", lr=lr, schedule=sched, **trainer_kw))
        out.append(trs)
    return out


def _exact(configs, kw, n=300, d=20, val=50):
    """Whether this machine's BLAS (one thread) gives the stack's column blocks the bits of each
    model's own products for every batch shape of the test: then stacked training must be
    bit-identical to training alone, else equal within float32 rounding."""
    width, k = configs[0]["sizes"][1], len(configs)
    bs = kw.get("batch_size") or n
    with threadpool_limits(limits=1):
        return all(blocks_exact(rows, d, width, k) for rows in {bs, n % bs or bs, val})


def _assert_same(stacked, alone, exact=True):
    for a, b in zip(stacked, alone):
        for p, q in zip(a.net.get_weights(), b.net.get_weights()):
            if exact:
                np.testing.assert_array_equal(p, q)
            else:
                np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
        assert a.epochs_done == b.epochs_done
        ha, hb = a.history.as_dict(), b.history.as_dict()
        for col in ("epoch", "loss", "accuracy", "lr"):
            if exact:
                assert ha[col] == hb[col], col
            else:
                np.testing.assert_allclose(np.array(ha[col], dtype=float), np.array(hb[col], dtype=float), rtol=1e-5)


CASES = {
    "full-batch relu/softmax, lr, init, shared bias and denominator differ": (
        [dict(sizes=[20, 8, 4], hidden_activation="relu", output_activation="softmax", loss="cross_entropy",
              init="he", seed=1, lr=0.5),
         dict(sizes=[20, 8, 4], hidden_activation="relu", output_activation="softmax", loss="cross_entropy",
              init="he", seed=1, lr=0.05),
         dict(sizes=[20, 8, 4], hidden_activation="relu", output_activation="softmax",
              loss={"name": "cross_entropy", "denominator": 20}, shared_bias=True, init="standard_normal",
              seed=7, lr=0.05, schedule={"name": "step", "step_size": 3, "gamma": 0.5})],
        dict(batch_size=None)),
    "minibatch sigmoid/MSE, two hidden layers, same shuffle seed": (
        [dict(sizes=[20, 16, 8, 4], hidden_activation="sigmoid", output_activation="sigmoid", loss="mse",
              init="normal", init_params={"std": 0.1}, seed=3, lr=lr) for lr in (0.1, 0.3, 1.0)],
        dict(batch_size=32, seed=11)),
    "no hidden layer (softmax regression), partial last batch": (
        [dict(sizes=[20, 4], output_activation="softmax", loss="cross_entropy", init="glorot", seed=s, lr=0.1)
         for s in (0, 1)],
        dict(batch_size=64, seed=5)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_stacked_equals_one_by_one(name):
    configs, kw = CASES[name]
    X, y = _data()
    stacked, alone = _pair(configs, kw)
    with threadpool_limits(limits=1):
        errors = StackedTrainer(stacked).fit(X, y, 7, X_val=X[:50], y_val=y[:50])
        for tr in alone:
            tr.fit(X, y, 7, X_val=X[:50], y_val=y[:50])
    assert errors == [None] * len(configs)
    exact = _exact(configs, kw)
    _assert_same(stacked, alone, exact=exact)
    for a, b in zip(stacked, alone):  # the network object works as usual after training
        if exact:
            np.testing.assert_array_equal(a.net.predict_proba(X), b.net.predict_proba(X))
            assert a.history.val_accuracy == b.history.val_accuracy
        else:
            np.testing.assert_allclose(a.net.predict_proba(X), b.net.predict_proba(X), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(a.history.val_accuracy, b.history.val_accuracy, atol=1 / 50)
    with threadpool_limits(limits=1):  # ... and each trainer goes on training alone exactly
        for a, b in zip(stacked, alone):
            a.fit(X, y, 9)
            b.fit(X, y, 9)
    _assert_same(stacked, alone, exact=exact)
    with threadpool_limits(limits=1):  # a stack can be fitted further, too
        again = StackedTrainer(stacked)
        again.fit(X, y, 11)  # epochs in total, as Trainer.fit counts them
        again.fit(X, y, 13)
        for b in alone:
            b.fit(X, y, 13)
    _assert_same(stacked, alone, exact=exact)


def test_stacked_float64_and_more_epochs_close():
    configs, kw = CASES["full-batch relu/softmax, lr, init, shared bias and denominator differ"]
    X, y = _data(seed=2)
    stacked, alone = _pair(configs, kw, dtype="float64")
    StackedTrainer(stacked).fit(X, y, 30)
    for tr in alone:
        tr.fit(X, y, 30)
    _assert_same(stacked, alone, exact=False)


def test_one_diverging_model_is_frozen_and_the_others_train_on():
    base = dict(sizes=[20, 8, 4], hidden_activation="relu", output_activation="softmax", loss="cross_entropy",
                init="he", seed=1)
    X, y = _data()
    X = X * 1e3
    stacked, alone = _pair([dict(base, lr=1e30), dict(base, lr=1e-4)], dict(batch_size=None, divergence_factor=None))
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        errors = StackedTrainer(stacked).fit(X, y, 5)
        alone[1].fit(X, y, 5)
    # epoch 1's step already overflows the weights (the loss would show it only in epoch 2)
    assert errors[0] is not None and "non-finite or too large at epoch 1" in str(errors[0])
    assert len(stacked[0].history) == 0 and stacked[0].epochs_done == 0
    assert errors[1] is None and stacked[1].epochs_done == 5
    assert all(np.isfinite(w).all() for w in stacked[0].net.get_weights())
    _assert_same([stacked[1]], [alone[1]], exact=_exact([base, base], dict(batch_size=None)))


def test_what_does_not_stack_is_named():
    X, y = _data()
    a = Trainer(MLP([20, 8, 4], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=None)
    b = Trainer(MLP([20, 8, 4], "relu", "softmax", "cross_entropy", seed=0), {"name": "sgd", "momentum": 0.9},
                lr=0.1, batch_size=None)
    assert "plain SGD" in stack_problem([a, b])
    c = Trainer(MLP([20, 9, 4], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=None)
    assert "sizes differ" in stack_problem([a, c])
    d = Trainer(MLP([20, 8, 4], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=10, seed=1)
    e = Trainer(MLP([20, 8, 4], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=10, seed=2)
    assert "shuffling seed" in stack_problem([d, e])
    with pytest.raises(ConfigError, match="cannot be trained as one stack"):
        StackedTrainer([a, b])
    # train_stacked falls back to one-by-one training and gives the same result
    a2 = Trainer(MLP([20, 8, 4], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=None)
    assert train_stacked([a, b], X, y, 3) == [None, None]
    a2.fit(X, y, 3)
    _assert_same([a], [a2])


def test_unmeasured_training_loss_is_missing_and_nothing_watches_it():
    """train_metrics="none": the stack records the loss as missing (None, not NaN), as Trainer
    does; a plateau schedule then watches the validation loss, and without validation data it
    is refused before anything trains."""
    configs = [dict(sizes=[20, 8, 4], lr=0.1, seed=s, schedule={"name": "reduce_on_plateau", "patience": 0})
               for s in (0, 1)]
    X, y = _data()
    stacked, alone = _pair(configs, {"batch_size": 50, "train_metrics": "none", "seed": 0})
    with pytest.raises(ConfigError, match="reduce_on_plateau.*does not measure"):
        StackedTrainer(stacked).fit(X, y, 2)
    assert all(tr.epochs_done == 0 for tr in stacked)
    with threadpool_limits(limits=1):
        StackedTrainer(stacked).fit(X, y, 4, X_val=X[:50], y_val=y[:50])
        for tr in alone:
            tr.fit(X, y, 4, X_val=X[:50], y_val=y[:50])
    for a, b in zip(stacked, alone):
        assert a.history.loss == b.history.loss == [None] * 4
        np.testing.assert_allclose(a.history.val_loss, b.history.val_loss, rtol=1e-5)
        assert a.history.lr == b.history.lr  # the schedule saw the same validation losses
