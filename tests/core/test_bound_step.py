"""Bound calls (mlplab.blas.bind_gemm/bind_gemv, MLP.bind_step): the same computation as the
plain calls, bit for bit, and the Trainer really uses them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab import activations
from mlplab.blas import bind_gemm, bind_gemv, gemm, gemv
from mlplab.network import MLP
from mlplab.training import Trainer

from layouts import layout as _layout


def _operand(rng, shape, dtype, kind):
    a = rng.normal(size=shape).astype(dtype)
    return np.ascontiguousarray(a.T).T if kind == "T" else _layout(a, kind)


@settings(max_examples=80, deadline=None)
@given(m=st.integers(0, 9), k=st.integers(0, 9), n=st.integers(0, 9),
       la=st.sampled_from(["C", "F", "S", "T"]), lb=st.sampled_from(["C", "F", "S", "T"]),
       lo=st.sampled_from(["C", "F"]), dtype=st.sampled_from([np.float32, np.float64]),
       alpha=st.sampled_from([1.0, -1.0, 0.5]), beta=st.sampled_from([0.0, 1.0, 0.25]))
def test_bound_gemm_is_gemm_bit_for_bit_on_the_current_contents(m, k, n, la, lb, lo, dtype, alpha, beta):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a, b = _operand(rng, (m, k), dtype, la), _operand(rng, (k, n), dtype, lb)
    out = _layout(rng.normal(size=(m, n)).astype(dtype), lo)
    want = out.copy(order="A")
    call = bind_gemm(a, b, out, alpha=alpha, beta=beta)
    for _ in range(2):  # the operands change between calls: the call reads them anew
        a[...] = rng.normal(size=a.shape)
        b[...] = rng.normal(size=b.shape)
        gemm(a, b, want, alpha=alpha, beta=beta)
        call()
        assert np.array_equal(out, want)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 9), k=st.integers(0, 9), la=st.sampled_from(["C", "F", "S", "T"]),
       dtype=st.sampled_from([np.float32, np.float64]),
       alpha=st.sampled_from([1.0, -1.0, 0.5]), beta=st.sampled_from([0.0, 1.0, 0.25]))
def test_bound_gemv_is_gemv_bit_for_bit(m, k, la, dtype, alpha, beta):
    rng = np.random.default_rng(m * 10 + k)
    a = _operand(rng, (m, k), dtype, la)
    x = rng.normal(size=k).astype(dtype)
    y = rng.normal(size=m).astype(dtype)
    want = y.copy()
    call = bind_gemv(a, x, y, alpha=alpha, beta=beta)
    for _ in range(2):
        a[...] = rng.normal(size=a.shape)
        gemv(a, x, want, alpha=alpha, beta=beta)
        call()
        assert np.array_equal(y, want)


def test_bound_calls_check_shapes_and_keep_their_arrays():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match="gemm shapes"):
        bind_gemm(a, b, np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="gemv shapes"):
        bind_gemv(a, np.ones(3, np.float32), np.empty(3, np.float32))
    out = np.empty((3, 2), np.float32)
    call = bind_gemm(a @ np.eye(4, dtype=np.float32), b, out)  # the only reference to ``a @ I``
    call()
    assert np.array_equal(out, np.full((3, 2), 4.0, np.float32))


CONFIGS = [
    dict(sizes=[64, 24, 16, 10], hidden="sigmoid", output="sigmoid", loss="mse", opt="sgd"),
    dict(sizes=[64, 24, 10], hidden="relu", output="softmax", loss="cross_entropy", opt="adam"),
    dict(sizes=[64, 24, 10], hidden="tanh", output="softmax", loss="cross_entropy",
         opt={"name": "sgd", "momentum": 0.9, "nesterov": True}),
    dict(sizes=[64, 24, 1], hidden="leaky_relu", output="sigmoid", loss="bce", opt="sgd"),
    dict(sizes=[64, 24, 10], hidden="relu", output="softmax", loss="cross_entropy", opt="sgd",
         l2=1e-3, dropout=0.3),
    dict(sizes=[64, 24, 10], hidden="relu", output="softmax", loss="cross_entropy", opt="rmsprop",
         l2=1e-3, dropout=0.3),
    dict(sizes=[64, 24, 10], hidden="sigmoid", output="identity", loss="mse", opt="sgd",
         shared_bias=True, l2=1e-3),
    dict(sizes=[64, 10], hidden="sigmoid", output="sigmoid", loss="mse", opt="sgd"),
]


def _train(cfg, dtype, bind, batch_size=64, drop_last=False, schedule=None, n=1000):
    rng = np.random.default_rng(7)
    X = rng.random((n, cfg["sizes"][0])).astype(dtype)
    y = rng.integers(0, 10, n) % max(cfg["sizes"][-1], 2)
    extra = {k: cfg[k] for k in ("l2", "dropout", "shared_bias") if k in cfg}
    net = MLP(cfg["sizes"], cfg["hidden"], cfg["output"], cfg["loss"], seed=3, dtype=dtype, **extra)
    tr = Trainer(net, cfg["opt"], lr=0.05, batch_size=batch_size, drop_last=drop_last, schedule=schedule)
    tr.bind_steps = bind
    tr.fit(X, y, 3)
    return net.get_weights(), tr.history


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['hidden']}-{c['loss']}-{len(c)}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_with_bound_steps_is_bit_identical_to_calling_the_layers(cfg, dtype):
    # 1000 rows, batch 64: 15 minibatches of 64 and a last one of 40, each size with its bound step
    w_bound, h_bound = _train(cfg, dtype, True)
    w_layers, h_layers = _train(cfg, dtype, False)
    for a, b in zip(w_bound, w_layers):
        assert np.array_equal(a, b)
    assert h_bound.loss == h_layers.loss and h_bound.accuracy == h_layers.accuracy


@pytest.mark.parametrize("drop_last", [False, True])
def test_bound_steps_with_a_schedule_and_drop_last(drop_last):
    cfg = dict(CONFIGS[0], l2=1e-3)
    sched = {"name": "step", "step_size": 1, "gamma": 0.5}
    runs = [_train(cfg, np.float32, bind, drop_last=drop_last, schedule=sched)[0] for bind in (True, False)]
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def test_the_trainer_binds_every_builtin_network(monkeypatch):
    bound = []
    original = MLP.bind_step

    def spy(self, xb, lr=None):
        step = original(self, xb, lr)
        bound.append(step)
        return step

    monkeypatch.setattr(MLP, "bind_step", spy)
    for cfg in CONFIGS:
        _train(cfg, np.float32, True)
    assert len(bound) == 2 * 3 * len(CONFIGS)  # per epoch: the full batches and the last one of 40
    assert all(step is not None for step in bound)


class _Cube(activations.Activation):
    """A user's activation: returns a new array, so it cannot be bound."""

    name = "cube_for_bound_step_test"

    def forward(self, z, out=None):
        return z ** 3

    def backward(self, a, dy, out=None, scratch=None):
        return dy * 3 * np.cbrt(a) ** 2


def test_a_user_activation_falls_back_to_calling_the_layers():
    net = MLP([8, 5, 3], _Cube(), "softmax", "cross_entropy", seed=0)
    xb = np.zeros((4, 8), np.float32)
    assert net.bind_step(xb) is None
    X = np.random.default_rng(0).random((40, 8)).astype(np.float32)
    y = np.arange(40) % 3
    tr = Trainer(net, "sgd", lr=0.01, batch_size=8)
    tr.fit(X, y, 2)
    assert np.isfinite(tr.history.loss).all()


@pytest.mark.parametrize("params, binds", [
    (dict(optimizer="adam", activation="relu", dropout=0.2), 2),
    (dict(optimizer="sgd", momentum=0.0, activation="logistic", learning_rate_init=0.05, output="sigmoid-mse"), 2),
    (dict(optimizer="sgd", momentum=0.9, activation="tanh", early_stopping=True), 2),
    # plain SGD folds the learning rate into the bound step: a new rate each epoch, new steps
    (dict(optimizer="sgd", momentum=0.0, activation="relu", schedule="inverse_scaling"), 2 * 4),
])
def test_estimator_fits_with_bound_steps_are_bit_identical(params, binds, monkeypatch):
    import mlplab.estimator as est
    from mlplab.estimator import MLPClassifier

    built = []
    original = est.bind_training_step
    monkeypatch.setattr(est, "bind_training_step", lambda *a: built.append(original(*a)) or built[-1])
    rng = np.random.default_rng(5)
    X = rng.random((300, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.5)
    fits = []
    for bind in (True, False):
        monkeypatch.setattr(MLPClassifier, "_bind_steps", bind)
        clf = MLPClassifier(hidden_layer_sizes=(9,), batch_size=32, max_iter=4, alpha=1e-3,
                            random_state=0, tol=0.0, n_iter_no_change=100, **params)
        with pytest.warns(Warning):  # max_iter reached
            clf.fit(X, y)
        fits.append(clf)
    # full batches and the last one, bound once per fit (per epoch if the rate changes); none refused
    assert len(built) == binds and all(built)
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    for a, b in zip(fits[0].net_.get_weights(), fits[1].net_.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_losses_are_value_and_grad_bit_for_bit(name, dtype):
    from mlplab.losses import get_loss

    rng = np.random.default_rng(11)
    for _ in range(40):
        n, k = int(rng.integers(1, 260)), (1 if name == "binary_cross_entropy" else int(rng.integers(2, 12)))
        loss = get_loss(name, k, dtype)
        out = (rng.normal(size=(n, k)) * rng.choice([0.1, 3.0, 30.0, 300.0])).astype(dtype)
        if name == "mse":
            out = np.tanh(out) * 0.5 + 0.5  # outputs of a sigmoid
        y = rng.integers(0, max(k, 2), n)
        g1, t1, g2, t2 = (np.full((n, k), np.nan, dtype) for _ in range(4))
        want = loss.value_and_grad(out, y, g1, target_buf=t1)
        call = loss.bind_value_and_grad(out, y, g2, t2)
        for _ in range(2):
            assert call() == want
            assert np.array_equal(g1, g2)
