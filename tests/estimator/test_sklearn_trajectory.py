"""mlplab's MLPClassifier computes scikit-learn's MLPClassifier: from the same weights, with the
same hyperparameters and the same minibatches (``shuffle=False``), both fits reach the same
weights and loss curve, up to float64 rounding. This is what makes the benchmark's accuracy
comparison (``benchmarks/bench_estimator.py``) a comparison of speed alone: equal accuracy is
expected by construction, and its differences over seeds are the seeds'."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from mlplab.estimator import MLPClassifier
from mlplab.interchange import from_sklearn, to_sklearn

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y  # (its always-zero pixels make Adam's epsilon matter)


def _start(X, y, **params):
    """A scikit-learn model after one minibatch step (some starting weights), and its mlplab copy."""
    sk = SkMLPClassifier(max_iter=1, shuffle=False, warm_start=True, tol=0.0, n_iter_no_change=100,
                         random_state=0, **params)
    n = params.get("batch_size", 200)
    sk.fit(X[:n], y[:n])
    est = from_sklearn(sk, dtype="float64")
    return sk, est


def _assert_same(est, sk, rtol=1e-9):
    ours = to_sklearn(est)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(est.loss_curve_[-len(sk.loss_curve_):], sk.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("params", [
    {},  # Adam with scikit-learn's defaults (epsilon=1e-8 matters on digits' blank pixels)
    {"hidden_layer_sizes": (32, 16), "activation": "tanh", "alpha": 1e-2, "epsilon": 1e-4, "beta_1": 0.8},
    {"activation": "logistic", "learning_rate_init": 3e-3, "beta_2": 0.99},
    {"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": True, "learning_rate_init": 0.05},
    {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.1},
], ids=["adam-defaults", "adam-tanh-two-layers", "adam-logistic", "sgd-nesterov", "sgd-plain"])
def test_fit_from_the_same_weights_follows_sklearn_step_for_step(digits, params):
    X, y = digits
    params = {"hidden_layer_sizes": (24,), "batch_size": 64, **params}
    sk, est = _start(X, y, **params)
    est.set_params(warm_start=True, shuffle=False, max_iter=4, tol=0.0, n_iter_no_change=100)
    sk.set_params(max_iter=4)
    sk.fit(X, y)  # warm_start: from the same weights, a fresh optimizer (scikit-learn's fit resets it)
    est.fit(X, y)  # a model made by from_sklearn has no optimizer state: a fresh one too
    assert est.t_ == 4 * int(np.ceil(len(y) / 64))
    _assert_same(est, sk)
    np.testing.assert_array_equal(est.predict(X), sk.predict(X))


def test_binary_fit_follows_sklearn_step_for_step(digits):
    X, y = digits
    y = np.where(y % 2 == 0, "even", "odd")  # one logistic output unit in both libraries
    sk, est = _start(X, y, hidden_layer_sizes=(12,), batch_size=100)
    est.set_params(warm_start=True, shuffle=False, max_iter=3, tol=0.0, n_iter_no_change=100)
    sk.set_params(max_iter=3)
    sk.fit(X, y)
    est.fit(X, y)
    _assert_same(est, sk)


def test_partial_fit_keeps_adam_state_as_sklearn_does(digits):
    """partial_fit keeps the optimizer in both libraries: five single-epoch calls on the same
    rows, each continuing the moments and the step count."""
    X, y = digits
    X, y = X[:300], y[:300]
    sk, est = _start(X, y, hidden_layer_sizes=(16,), batch_size=60)
    del sk._optimizer  # partial_fit would continue the starting step's Adam; est's starts fresh
    for _ in range(5):
        sk.partial_fit(X, y)
        est.partial_fit(X, y)
    _assert_same(est, sk)


def test_pytorch_placement_of_epsilon_would_differ(digits, monkeypatch):
    """The same run with epsilon added to the bias-corrected sqrt(v_hat) (PyTorch's Adam) ends
    measurably away from scikit-learn's: the placement the estimator uses is what matches."""
    spec = MLPClassifier._optimizer_spec
    monkeypatch.setattr(MLPClassifier, "_optimizer_spec", lambda self: {**spec(self), "eps_on": "v_hat"})
    X, y = digits
    sk, est = _start(X, y, hidden_layer_sizes=(24,), batch_size=64)
    est.set_params(warm_start=True, shuffle=False, max_iter=4, tol=0.0, n_iter_no_change=100)
    sk.set_params(max_iter=4)
    sk.fit(X, y)
    est.fit(X, y)
    assert est._optimizer.eps_on == "v_hat"
    W_ours, W_sk = to_sklearn(est).coefs_[0], sk.coefs_[0]
    assert np.abs(W_ours - W_sk).max() > 1e-4 * np.abs(W_sk).max()
