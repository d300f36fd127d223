"""Aliasing and atomicity defects found by the memory audit (QA1 findings 1-5, 7, 8, 11, 12):
arrays and specs shared with the caller where a copy was meant, stacked networks detached from
their own arrays, and loads that failed half-way."""

import numpy as np
import pytest
from scipy.linalg import blas as scipy_blas

from mlplab import blas
from mlplab.blas import axpy
from mlplab.errors import ConfigError
from mlplab.network import MLP
from mlplab.optimizers import get_optimizer
from mlplab.serialization import load_model, save_model
from mlplab.stacked import StackedTrainer, stack_problem, train_stacked
from mlplab.training import Callback, Trainer


def _data(n=200, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, rng.integers(0, k, n)


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))


# -- 1: the wide layer of a stack runs one hidden activation for every model ---------------------
def _leaky(slope, seed=1):
    net = MLP([6, 8, 3], {"name": "leaky_relu", "slope": slope}, "softmax", loss="cross_entropy", seed=seed)
    return Trainer(net, "sgd", lr=0.5, batch_size=None)


def test_models_whose_hidden_activation_parameters_differ_do_not_stack():
    X, y = _data()
    assert "hidden activation parameters differ" in stack_problem([_leaky(0.01), _leaky(0.5)])
    with pytest.raises(ConfigError, match="slope"):
        StackedTrainer([_leaky(0.01), _leaky(0.5)])
    assert stack_problem([_leaky(0.5, seed=1), _leaky(0.5, seed=2)]) is None
    # train_stacked then trains them one by one: each as it would alone
    pair = [_leaky(0.01), _leaky(0.5)]
    train_stacked(pair, X, y, 3)
    alone = _leaky(0.5)
    alone.fit(X, y, 3)
    assert _same(pair[1].net.get_weights(), alone.net.get_weights())


# -- 2: state_dict is a snapshot -------------------------------------------------------------------
def test_optimizer_and_trainer_state_dicts_are_snapshots():
    X, y = _data()
    make = lambda: Trainer(MLP([6, 8, 3], "relu", "softmax", loss="cross_entropy", seed=0),  # noqa: E731
                           "adam", lr=0.01, batch_size=50)
    tr = make()
    tr.fit(X, y, 2)
    weights = tr.net.get_weights()
    meta, arrays = tr.state_dict()
    kept = {k: v.copy() for k, v in arrays.items()}
    live = [a for lst in tr.optimizer.state.values() for a in lst]
    assert not any(np.shares_memory(v, a) for v in arrays.values() for a in live)
    tr.fit(X, y, 4)
    assert all(np.array_equal(arrays[k], kept[k]) for k in kept)  # later training left it alone
    # rewinding to the snapshot reproduces the run from there, bit for bit
    end = tr.net.get_weights()
    tr.net.set_weights(weights)
    tr.load_state_dict(meta, arrays)
    tr.fit(X, y, 4)
    assert _same(tr.net.get_weights(), end)


def test_trainer_state_dict_copies_the_interrupted_epochs_order():
    X, y = _data()
    tr = Trainer(MLP([6, 8, 3], "relu", "softmax", loss="cross_entropy", seed=0), "sgd", lr=0.1, batch_size=50)
    tr.interrupt_requested = True
    with pytest.raises(Exception, match="interrupted"):
        tr.fit(X, y, 1)
    _, arrays = tr.state_dict()
    assert not np.shares_memory(arrays["resume/order"], tr._resume["order"])


# -- 3: the network owns its activation specs -----------------------------------------------------
def test_network_keeps_its_own_copy_of_the_activation_specs(tmp_path):
    spec = {"name": "leaky_relu", "slope": 0.1}
    out_spec = {"name": "leaky_relu", "slope": 0.2}
    net = MLP([4, 8, 3], spec, out_spec, loss="mse", seed=0)
    spec["slope"], out_spec["slope"] = 0.5, 0.7  # the caller reuses its dicts for the next network
    assert net.config()["hidden_activation"] == {"name": "leaky_relu", "slope": 0.1}
    assert net.config()["output_activation"] == {"name": "leaky_relu", "slope": 0.2}
    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    save_model(tmp_path / "m.npz", net)
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").net.decision_function(X), net.decision_function(X))


# -- 4: stacking keeps the networks' own arrays --------------------------------------------------------
@pytest.mark.parametrize("shared_bias", [False, True])
def test_stacked_training_leaves_every_network_its_own_parameter_arrays(shared_bias):
    X, y = _data(n=300, d=10)
    nets = [MLP([10, 16, 3], "relu", "softmax", loss="cross_entropy", seed=s, shared_bias=shared_bias)
            for s in (1, 2)]
    held = [net.parameters() for net in nets]
    finetune = Trainer(nets[0], "adam", lr=0.01, batch_size=50)  # built before, used after
    stacked = [Trainer(n, "sgd", lr=0.1, batch_size=None) for n in nets]
    StackedTrainer(stacked).fit(X, y, 3)
    for net, before in zip(nets, held):
        assert all(p is q for p, q in zip(net.parameters(), before))
        assert net.dense_layers[0].params[0] is net.dense_layers[0].W
        assert net.dense_layers[0].W.flags.c_contiguous
    assert all(a is b for a, b in zip(stacked[0].optimizer.params, held[0]))
    W0 = nets[0].dense_layers[0].W.copy()
    finetune.fit(X, y, 2)
    assert not np.array_equal(W0, nets[0].dense_layers[0].W)  # the first layer learns on


def test_unstacked_values_are_the_stacks():
    # the values copied back are the trained ones: a second stacked fit continues from them
    X, y = _data(n=300, d=10)
    make = lambda: [Trainer(MLP([10, 16, 3], "tanh", "softmax", loss="cross_entropy", seed=s),  # noqa: E731
                            "sgd", lr=0.1, batch_size=None) for s in (1, 2)]
    once, twice = make(), make()
    StackedTrainer(once).fit(X, y, 4)
    StackedTrainer(twice).fit(X, y, 2)
    StackedTrainer(twice).fit(X, y, 4)
    for a, b in zip(once, twice):
        assert _same(a.net.get_weights(), b.net.get_weights())


# -- 5: backward leaves the caller's gradient alone ---------------------------------------------------
def test_backward_and_backward_step_do_not_overwrite_grad_out():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 5)).astype(np.float32)
    net = MLP([5, 7, 3], "tanh", "sigmoid", loss="mse", seed=0)  # ends in an activation layer
    net.forward(X, training=True)
    g = rng.normal(size=(20, 3)).astype(np.float32)
    g0 = g.copy()
    net.backward(g)
    assert np.array_equal(g, g0)
    first = [d.copy() for d in net.gradients()]
    net.backward(g)
    assert _same(net.gradients(), first)
    net.backward(g.copy(), overwrite_grad=True)  # the training loop's way: the same bits
    assert _same(net.gradients(), first)

    a, b = MLP([5, 7, 3], "tanh", "sigmoid", loss="mse", seed=0), MLP([5, 7, 3], "tanh", "sigmoid", loss="mse", seed=0)
    a.forward(X, training=True)
    b.forward(X, training=True)
    a.backward_step(g, 0.1)
    assert np.array_equal(g, g0)
    b.backward_step(g.copy(), 0.1, overwrite_grad=True)
    assert _same(a.get_weights(), b.get_weights())


# -- 7: set_weights while stacked reaches a shared bias ------------------------------------------------
class _Rewind(Callback):
    """At epoch 2, back to the weights after epoch 1 with a moved bias (a user's rollback)."""

    def on_epoch_end(self, tr, logs):
        if logs["epoch"] == 1:
            self.snap = tr.net.get_weights()
        if logs["epoch"] == 2:
            w = [a.copy() for a in self.snap]
            w[1] += 3.0
            tr.net.set_weights(w)


@pytest.mark.parametrize("shared_bias", [False, True])
def test_set_weights_in_a_callback_while_stacked_reaches_the_stack(shared_bias):
    X, y = _data(k=2)

    def make(seed):
        net = MLP([6, 5, 2], "tanh", "softmax", loss="cross_entropy", seed=seed, shared_bias=shared_bias)
        return Trainer(net, "sgd", lr=0.5, batch_size=None, callbacks=[_Rewind()])

    stacked = [make(1), make(2)]
    StackedTrainer(stacked).fit(X, y, 4)
    for k, seed in enumerate((1, 2)):
        alone = make(seed)
        alone.fit(X, y, 4)
        for p, q in zip(stacked[k].net.get_weights(), alone.net.get_weights()):
            np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


# -- 8: loads are all or nothing -------------------------------------------------------------------
def test_set_weights_checks_every_array_before_writing():
    net = MLP([5, 3, 2], seed=0)
    before = net.get_weights()
    bad = [w + 1 for w in before]
    bad[2] = bad[2].T  # the third array has the wrong shape
    with pytest.raises(ConfigError, match="shape"):
        net.set_weights(bad)
    assert _same(net.get_weights(), before)
    bad = [w + 1 for w in before]
    bad[3] = np.array(["x", "y"])
    with pytest.raises(ConfigError, match="real numbers"):
        net.set_weights(bad)
    assert _same(net.get_weights(), before)
    net.set_weights([w.astype(np.float64) + 1 for w in before])  # other float types still load
    assert _same(net.get_weights(), [w + 1 for w in before])


def _adam_state(steps=3):
    params = [np.ones((4, 3), np.float32), np.ones(3, np.float32)]
    opt = get_optimizer("adam", params, lr=0.01)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        opt.step([rng.normal(size=p.shape).astype(np.float32) for p in params])
    return opt


def test_optimizer_load_checks_every_array_before_writing():
    meta, arrays = _adam_state().state_dict()
    target = _adam_state(steps=1)
    t, kept = target.t, {k: [a.copy() for a in v] for k, v in target.state.items()}
    scales = {k: list(v) for k, v in target.scales.items()}
    broken = [
        {k: v for k, v in arrays.items() if k != "v_scaled/1"},  # missing after the first arrays
        {**arrays, "v_scaled/1": np.zeros(4, np.float32)},  # wrong shape
        {**arrays, "v_scaled/0": np.full((4, 3), "x")},  # not numbers
    ]
    for bad in broken:
        with pytest.raises(ConfigError):
            target.load_state_dict(meta, bad)
        assert target.t == t and target.scales == scales
        assert all(_same(target.state[k], kept[k]) for k in kept)
    target.load_state_dict(meta, arrays)
    assert target.t == meta["t"] and _same(target.state["m_scaled"], [arrays["m_scaled/0"], arrays["m_scaled/1"]])


def test_trainer_load_checks_everything_before_changing_the_trainer():
    X, y = _data()

    def make():
        net = MLP([6, 8, 3], "relu", "softmax", loss="cross_entropy", seed=0)
        return Trainer(net, "adam", lr=0.01, batch_size=50,
                       schedule={"name": "reduce_on_plateau", "patience": 0, "factor": 0.5})

    src = make()
    src.fit(X, y, 3)
    meta, arrays = src.state_dict()
    tr = make()
    tr.fit(X, y, 1)
    snapshot = tr.state_dict()
    rngs = (tr.rng.bit_generator.state, tr.net.dropout_rng.bit_generator.state)
    bad_arrays = {k: v for k, v in arrays.items() if k != "optimizer/v_scaled/3"}
    bad_rng = {**meta, "dropout_rng": {"bit_generator": "PCG64", "state": "nonsense"}}
    for m, a in ((meta, bad_arrays), (bad_rng, arrays)):
        with pytest.raises((ConfigError, ValueError, TypeError, KeyError)):
            tr.load_state_dict(m, a)
        now_meta, now_arrays = tr.state_dict()
        assert now_meta == snapshot[0]
        assert all(np.array_equal(now_arrays[k], v) for k, v in snapshot[1].items())
        assert (tr.rng.bit_generator.state, tr.net.dropout_rng.bit_generator.state) == rngs


# -- 11: a batch order must name rows of the training set ------------------------------------------
@pytest.mark.parametrize("order, match", [
    (lambda e, n: np.array([0, 1, 2, 3, 4, 99, -1, 5, 6, 7]), "row indices"),
    (lambda e, n: np.arange(n) - 1, "row indices"),
    (lambda e, n: np.arange(n) + 0.5, "integer"),
    (lambda e, n: np.arange(n).reshape(2, -1), "1-D"),
])
def test_a_batch_order_out_of_range_is_refused(order, match):
    X, y = _data(n=10)
    tr = Trainer(MLP([6, 4, 3], "relu", "softmax", loss="cross_entropy", seed=0), "sgd", lr=0.1,
                 batch_size=5, batch_order=order)
    with pytest.raises(ConfigError, match=match):
        tr.fit(X, y, 1)


def test_a_valid_batch_order_trains_as_before():
    X, y = _data(n=10)
    orders = [np.array([3, 3, 0, 9, 1]), [4, 2], np.arange(10, dtype=np.uint8)]
    for order in orders:  # repeats, a subset, lists and other integer types
        a = Trainer(MLP([6, 4, 3], "relu", "softmax", loss="cross_entropy", seed=0), "sgd", lr=0.1,
                    batch_size=2, batch_order=lambda e, n, o=order: o)
        a.fit(X, y, 2)
        idx = np.asarray(order, dtype=np.int64)
        b = Trainer(MLP([6, 4, 3], "relu", "softmax", loss="cross_entropy", seed=0), "sgd", lr=0.1,
                    batch_size=2, shuffle=False)
        b.fit(X[idx], y[idx], 2)
        assert _same(a.net.get_weights(), b.net.get_weights())


def test_an_interrupted_epochs_order_must_fit_the_training_set():
    X, y = _data(n=100)
    tr = Trainer(MLP([6, 4, 3], "relu", "softmax", loss="cross_entropy", seed=0), "sgd", lr=0.1, batch_size=10)
    tr.interrupt_requested = True
    with pytest.raises(Exception, match="interrupted"):
        tr.fit(X, y, 1)
    tr.interrupt_requested = False
    with pytest.raises(ConfigError, match="interrupted epoch"):
        tr.fit(X[:50], y[:50], 1)  # resumed on another, smaller training set


# -- 12: axpy on overlapping arrays -----------------------------------------------------------------
def _overlapping_axpy_cases():
    x = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    yield "y after x", x, slice(0, -1), slice(1, None)
    yield "y before x", x, slice(1, None), slice(0, -1)
    yield "same array", x, slice(None), slice(None)
    yield "float64, far apart but overlapping", x.astype(np.float64), slice(0, 600), slice(400, None)


@pytest.mark.parametrize("backend", ["default", "scipy"])
def test_axpy_on_overlapping_views_equals_numpy(monkeypatch, backend):
    if backend == "scipy":  # the fallback BLAS's path
        monkeypatch.setattr(blas, "_CBLAS", None)
        monkeypatch.setattr(blas, "_AXPY", {np.dtype(np.float32): scipy_blas.saxpy,
                                            np.dtype(np.float64): scipy_blas.daxpy})
    for name, base, xs, ys in _overlapping_axpy_cases():
        want = base[ys] + 2.0 * base[xs]
        y = base.copy()
        assert axpy(2.0, y[xs], y[ys]) is not None
        np.testing.assert_allclose(y[ys], want, rtol=1e-6, err_msg=name)
    # disjoint arrays still go through BLAS, with BLAS's bits
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 200)).astype(np.float32), rng.normal(size=(300, 200)).astype(np.float32)
    want = y + np.float32(0.5) * x
    np.testing.assert_allclose(axpy(0.5, x, y), want, rtol=1e-6)
