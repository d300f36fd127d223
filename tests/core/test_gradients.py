"""Gradient checks in float64 for every activation x loss x depth pairing that makes sense."""

import itertools

import numpy as np
import pytest

from mlplab.gradcheck import gradcheck
from mlplab.network import MLP

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
OUTPUT_LOSS = [
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("tanh", "mse"),
    ("softmax", "cross_entropy"),
    ("sigmoid", "binary_cross_entropy"),
]
DEPTHS = {1: [5, 4, 3], 2: [5, 4, 6, 3], 3: [5, 6, 4, 5, 3]}


def _kink_free(net, X, margin=2e-2):
    """True when no hidden pre-activation lies within ``margin`` of a ReLU kink."""
    out = X
    for layer in net.layers:
        out = layer.forward(out, training=False)
        if type(layer).__name__ == "Dense" and np.min(np.abs(out)) < margin:
            return False
    return True


def _net_and_data(sizes, hidden, output, loss, l2=0.0, dropout=0.0):
    for seed in range(500):
        rng = np.random.default_rng(seed)
        net = MLP(sizes, hidden, output, loss, init="glorot", dtype="float64", seed=seed, l2=l2, dropout=dropout)
        for layer in net.dense_layers:
            layer.b[...] = rng.normal(0, 0.2, layer.b.shape)
        X = rng.normal(size=(9, sizes[0]))
        y = rng.integers(0, sizes[-1], 9)
        if hidden not in ("relu", "leaky_relu") or _kink_free(net, X):
            return net, X, y
    raise AssertionError("no kink-free draw found")


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("hidden,output,loss", [(h, o, l) for h, (o, l) in itertools.product(HIDDEN, OUTPUT_LOSS)])
def test_gradients_match_central_differences(hidden, output, loss, depth):
    net, X, y = _net_and_data(DEPTHS[depth], hidden, output, loss)
    result = gradcheck(net, X, y)
    assert result.max_rel_error < 1e-6, result.per_parameter
    assert result.n_checked == net.n_parameters


@pytest.mark.parametrize("loss,output", [("mse", "sigmoid"), ("cross_entropy", "softmax")])
def test_gradients_with_l2_and_dropout(loss, output):
    net, X, y = _net_and_data([6, 5, 4, 3], "tanh", output, loss, l2=0.05, dropout=0.3)
    result = gradcheck(net, X, y)
    assert result.max_rel_error < 1e-6, result.per_parameter


def test_single_output_binary_cross_entropy():
    rng = np.random.default_rng(0)
    net = MLP([7, 1], "sigmoid", "sigmoid", "binary_cross_entropy", init="uniform",
              init_params={"low": -0.5, "high": 0.5}, dtype="float64")
    X = rng.normal(size=(12, 7))
    y = rng.integers(0, 2, 12)
    assert gradcheck(net, X, y).max_rel_error < 1e-6


def test_shared_bias_gradient():
    rng = np.random.default_rng(1)
    net = MLP([5, 4, 3], "relu", "softmax", "cross_entropy", init="glorot", dtype="float64", shared_bias=True)
    for layer in net.dense_layers:
        layer.b[...] = 0.3
    X = rng.normal(size=(6, 5))
    y = rng.integers(0, 3, 6)
    assert _kink_free(net, X)
    assert gradcheck(net, X, y).max_rel_error < 1e-6


def _make_dense_weight_gradients_1_percent_wrong(monkeypatch):
    from mlplab import layers

    original = layers.Dense.backward

    def broken(self, dz, need_dx=True):
        out = original(self, dz, need_dx)
        self.dW *= 1.01
        return out

    monkeypatch.setattr(layers.Dense, "backward", broken)


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    net, X, y = _net_and_data([5, 4, 3], "sigmoid", "sigmoid", "mse")
    _make_dense_weight_gradients_1_percent_wrong(monkeypatch)
    assert gradcheck(net, X, y).max_rel_error > 1e-3


def test_gradcheck_requires_float64():
    from mlplab.errors import ConfigError

    net = MLP([3, 2], dtype="float32")
    with pytest.raises(ConfigError, match="float64"):
        gradcheck(net, np.zeros((2, 3)), np.array([0, 1]))


def test_gradcheck_passes_zero_gradients_of_always_zero_inputs(monkeypatch):
    """An input column that is always 0 has exactly-zero weight gradients, and the finite
    differences only round-off (~1e-12): that must not count as a relative error of ~1e-6."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:20] / 16.0, y[:20]
    assert not X[:, 0].any()  # the digits' first pixel is always 0
    net = MLP([64, 5, 4, 10], "sigmoid", "sigmoid", "mse", init="glorot", dtype="float64", seed=1)
    result = gradcheck(net, X, y)
    assert result.passed(), result.per_parameter
    # a wrong gradient is still caught on the same data
    _make_dense_weight_gradients_1_percent_wrong(monkeypatch)
    assert gradcheck(net, X, y, max_entries=40).max_rel_error > 1e-3


@pytest.mark.parametrize("loss,output", [("cross_entropy", "softmax"), ("mse", "sigmoid")])
def test_gradcheck_checks_the_bound_and_fused_steps_the_loops_train_with(monkeypatch, loss, output):
    """The Trainer and the estimator train through bound calls (and plain SGD fused into the
    products), not through MLP.loss_and_gradients: gradcheck checks those paths too, so a
    fault confined to them fails it. Before, a 1.5x error in the bound cross-entropy gradient
    passed gradcheck at 3.4e-9."""
    net, X, y = _net_and_data([6, 5, 4, 3], "tanh", output, loss, l2=0.05, dropout=0.3)
    before = net.get_weights()
    result = gradcheck(net, X, y)
    assert set(result.per_path) == {"backward", "bound step", "fused SGD step", "unbound fused SGD step"}
    assert max(result.per_path.values()) < 1e-6, result.per_path
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights()))  # weights left as they were

    from mlplab.losses import CrossEntropy, MSE

    cls = CrossEntropy if loss == "cross_entropy" else MSE
    original = cls.bind_value_and_grad

    def skewed(self, out, y, grad, target_buf=None):
        call = original(self, out, y, grad, target_buf)

        def value_and_grad():
            value = call()
            np.multiply(grad, 1.5, out=grad)
            return value
        return value_and_grad

    monkeypatch.setattr(cls, "bind_value_and_grad", skewed)
    bad = gradcheck(net, X, y)
    assert bad.per_path["backward"] < 1e-6 and bad.per_path["bound step"] > 0.1 and bad.per_path["fused SGD step"] > 0.1
    assert bad.per_path["unbound fused SGD step"] < 1e-6  # the unbound loss is not skewed
    assert not bad.passed()
