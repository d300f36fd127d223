"""A diverged epoch of MLPClassifier is undone whole (weights, optimizer state, generators): a
warm refit at a smaller rate continues as if it had never run."""

import numpy as np
import pytest

from mlplab.errors import DivergenceError
from mlplab.estimator import MLPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning",
                                        "ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:500] / 16.0, y[:500]


@pytest.mark.parametrize("params", [
    {"optimizer": "adam"},
    {"optimizer": "sgd", "momentum": 0.9, "learning_rate_init": 0.01},
    {"optimizer": "rmsprop", "dropout": 0.2},
    {"optimizer": "adam", "batch_size": "full"},
], ids=["adam", "sgd-momentum", "rmsprop-dropout", "adam-full-batch"])
def test_a_warm_refit_after_divergence_continues_as_if_it_never_ran(digits, params):
    X, y = digits
    base = {"hidden_layer_sizes": (16,), "max_iter": 2, "random_state": 0, "warm_start": True, **params}
    lr = base.get("learning_rate_init", 1e-3)
    ref = MLPClassifier(**base).fit(X, y).fit(X, y)  # 4 epochs

    est = MLPClassifier(**base).fit(X, y)
    t_before = est.t_
    with pytest.raises(DivergenceError, match=r"at epoch 3 .*optimizer state were restored"):
        est.set_params(learning_rate_init=1e30).fit(X, y)
    assert est.n_iter_ == 2 and est.t_ == t_before
    est.set_params(learning_rate_init=lr).fit(X, y)
    assert est.n_iter_ == ref.n_iter_ == 4 and est.t_ == ref.t_
    for a, b in zip(est.net_.parameters(), ref.net_.parameters()):
        assert np.array_equal(a, b)
    assert est.loss_curve_ == ref.loss_curve_
