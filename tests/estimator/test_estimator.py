"""The scikit-learn compatible estimators of mlplab.estimator."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlplab.estimator import MLPClassifier, OneVsRestLogisticRegression
from mlplab.errors import ModelFileError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# -- scikit-learn's estimator checks -------------------------------------------------------------
# Small, fast configurations. The float64 MLP passes every check. The float32 MLP (the default
# dtype) fails only the two sample-weight equivalence checks, whose rtol of 1e-7 is below
# float32 resolution: weighting a row and repeating it give the same objective, but the sums
# run in a different order, so the fitted probabilities agree to about 1e-6 (relative).
_F32_SW = ("float32 training: weighted and repeated rows are summed in a different order; the fits "
           "agree to ~1e-6 relative, below the check's rtol=1e-7 (passes with dtype='float64')")
CHECKED = [
    MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, dtype="float64"),
    MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, dtype="float32"),
    OneVsRestLogisticRegression(learning_rate=0.5, max_iter=100),
    OneVsRestLogisticRegression(learning_rate=0.5, max_iter=100, dtype="float64"),
]


def expected_failed_checks(estimator):
    if estimator.dtype == "float32":
        return {"check_sample_weight_equivalence_on_dense_data": _F32_SW,
                "check_sample_weight_equivalence_on_sparse_data": _F32_SW}
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_small():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:600], y[:600]


def _weights(est):
    return [p.copy() for p in est.net_.parameters()]


def _assert_same_weights(a, b, rtol=0.0, atol=0.0):
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=atol)


# -- sklearn tooling -----------------------------------------------------------------------------
def test_pipeline_gridsearch_cross_val(digits_small):
    X, y = digits_small
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=15, random_state=0,
                                                                 learning_rate_init=0.01))
    pipe.fit(X[:450], y[:450])
    assert pipe.score(X[450:], y[450:]) > 0.85

    grid = GridSearchCV(MLPClassifier(max_iter=8, batch_size=32, random_state=0, learning_rate_init=0.01),
                        {"alpha": [1e-4, 1e-2], "hidden_layer_sizes": [(16,), (32,)]}, cv=3)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"alpha", "hidden_layer_sizes"}
    assert grid.best_score_ > 0.85

    scores = cross_val_score(MLPClassifier(hidden_layer_sizes=(32,), max_iter=10, batch_size=32, random_state=0,
                                           learning_rate_init=0.01), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85


def test_params_roundtrip_and_clone():
    est = MLPClassifier(hidden_layer_sizes=(7, 5), activation="tanh", alpha=0.1, class_weight={"a": 2.0},
                        schedule="step", schedule_params={"step_size": 2}, random_state=3)
    params = est.get_params()
    again = MLPClassifier().set_params(**params)
    assert again.get_params() == params
    c = clone(est)
    assert c.get_params() == params and c is not est
    o = OneVsRestLogisticRegression(threshold=0.75, n_pos=50)
    assert clone(o).get_params() == o.get_params()


# -- labels, outputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["softmax", "sigmoid-mse"])
def test_string_labels_and_outputs(digits_small, output):
    X, y = digits_small
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    ys = names[y]
    est = MLPClassifier(hidden_layer_sizes=(32,), max_iter=40, learning_rate_init=0.01, output=output,
                        random_state=0).fit(X, ys)
    assert list(est.classes_) == sorted(names)
    pred = est.predict(X)
    assert pred.dtype.kind == "U" and np.mean(pred == ys) > 0.9
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(est.classes_[proba.argmax(axis=1)], pred)
    np.testing.assert_allclose(np.exp(est.predict_log_proba(X)), proba, rtol=1e-10, atol=1e-12)
    assert est.decision_function(X).shape == (len(X), 10)
    # binary problem: one output unit, 1-D decision function
    yb = np.where(y < 5, "low", "high")
    est.fit(X, yb)
    assert est.n_outputs_ == 1 and est.decision_function(X).shape == (len(X),)
    assert np.array_equal(est.predict(X), est.classes_[(est.decision_function(X) > 0).astype(int)])
    assert est.score(X, yb) > 0.85


def test_random_state_none_draws_a_seed(digits_small):
    X, y = digits_small
    a = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2).fit(X, y)
    assert isinstance(a.seed_, int) and a.seed_ != b.seed_
    c = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=a.seed_).fit(X, y)
    _assert_same_weights(a, c)


def test_early_stopping_attributes(digits_small):
    X, y = digits_small
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, early_stopping=True, n_iter_no_change=3,
                        validation_fraction=0.2, random_state=0).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_ == len(est.validation_loss_curve_) == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None
    plain = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)
    assert plain.validation_scores_ is None and plain.best_loss_ == min(plain.loss_curve_)


# -- weighting -----------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sample_weight_equals_duplicated_rows(optimizer):
    """Full-batch GD: weight 2 on a row == that row twice; weight 0 == row removed (with L2)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = rng.integers(0, 3, size=40)
    w = np.ones(40)
    w[3], w[7], w[11] = 2.0, 3.0, 0.0
    X_rep, y_rep = np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int))
    kw = dict(hidden_layer_sizes=(6,), activation="tanh", batch_size=None, max_iter=25, alpha=0.3, tol=0.0,
              optimizer=optimizer, momentum=0.0, learning_rate_init=0.05, dtype="float64", random_state=1)
    weighted = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**kw).fit(X_rep, y_rep)
    _assert_same_weights(weighted, repeated, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    # and the weights matter
    unweighted = MLPClassifier(**kw).fit(X, y)
    assert not np.allclose(_weights(unweighted)[0], _weights(weighted)[0])


def test_class_weight_matches_sample_weight():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4))
    y = np.where(rng.random(60) < 0.2, 1, 0)
    kw = dict(hidden_layer_sizes=(5,), max_iter=5, dtype="float64", batch_size=16, random_state=0)
    cw = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    a = MLPClassifier(class_weight="balanced", **kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=cw[y])
    c = MLPClassifier(class_weight={0: cw[0], 1: cw[1]}, **kw).fit(X, y)
    _assert_same_weights(a, b)
    _assert_same_weights(a, c)
    # class weights shift the decisions towards the up-weighted class
    heavy = MLPClassifier(class_weight={0: 1.0, 1: 50.0}, **{**kw, "max_iter": 50}).fit(X, y)
    plain = MLPClassifier(**{**kw, "max_iter": 50}).fit(X, y)
    assert np.mean(heavy.predict(X) == 1) > np.mean(plain.predict(X) == 1)


# -- incremental training ------------------------------------------------------------------------
def test_warm_start_continues_exactly(digits_small):
    X, y = digits_small
    kw = dict(hidden_layer_sizes=(16,), batch_size=64, dropout=0.1, schedule="step",
              schedule_params={"step_size": 2, "gamma": 0.5}, tol=0.0, random_state=5)
    one = MLPClassifier(max_iter=5, **kw).fit(X, y)
    two = MLPClassifier(max_iter=3, **kw).fit(X, y)
    two.set_params(warm_start=True, max_iter=2).fit(X, y)
    _assert_same_weights(one, two)
    assert one.loss_curve_ == two.loss_curve_ and two.n_iter_ == 5 and two.t_ == one.t_
    # without warm_start a second fit starts over
    three = MLPClassifier(max_iter=3, **kw).fit(X, y)
    three.fit(X, y)
    assert three.n_iter_ == 3


def test_partial_fit(digits_small):
    X, y = digits_small
    kw = dict(hidden_layer_sizes=(16,), batch_size=50, tol=0.0, random_state=2)
    est = MLPClassifier(**kw)
    with pytest.raises(ValueError, match="classes"):
        est.partial_fit(X, y)
    for _ in range(3):
        est.partial_fit(X, y, classes=np.arange(10))
    full = MLPClassifier(max_iter=3, **kw).fit(X, y)
    _assert_same_weights(est, full)
    assert est.n_iter_ == 3
    # batches with a subset of the classes, and unseen labels are refused
    est.partial_fit(X[y < 3], y[y < 3])
    with pytest.raises(ValueError, match="not seen"):
        est.partial_fit(X[:5], np.full(5, 11))


def test_partial_fit_refuses_early_stopping_before_changing_anything(digits_small):
    X, y = digits_small
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, early_stopping=True, random_state=0).fit(X, y)
    before = _weights(est)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        est.partial_fit(X, y)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    for a, b in zip(before, _weights(est)):
        np.testing.assert_array_equal(a, b)
    # switching early stopping off continues with the training-loss rule, warm or incremental
    est.set_params(early_stopping=False, warm_start=True, max_iter=2).fit(X, y)
    assert est.n_iter_ == 5 and est.best_loss_ == min(est.loss_curve_[3:])
    est.partial_fit(X, y)
    assert est.n_iter_ == 6
    # and back on: a fresh validation count, best weights from this fit
    est.set_params(early_stopping=True).fit(X, y)
    assert est.best_loss_ is None and len(est.validation_scores_) == 5
    assert est.best_validation_score_ == max(est.validation_scores_[3:])


def test_warm_start_applies_training_settings_and_refuses_architecture_changes(digits_small):
    from mlplab.layers import Dropout

    X, y = digits_small
    est = MLPClassifier(hidden_layer_sizes=(8, 6), max_iter=2, optimizer="sgd", random_state=0,
                        warm_start=True).fit(X, y)
    before, params = _weights(est), est.get_params()
    for change in ({"activation": "tanh"}, {"output": "sigmoid-mse"}, {"hidden_layer_sizes": (8, 5)},
                   {"dtype": "float64"}):
        with pytest.raises(ValueError, match=f"{next(iter(change))} changed from .* refit without warm_start"):
            est.set_params(**change).fit(X, y)
        est.set_params(**params)
    assert est.n_iter_ == 2
    for a, b in zip(before, _weights(est)):
        np.testing.assert_array_equal(a, b)
    # optimizer hyperparameters change in place (the velocity is kept), dropout and schedule apply
    opt = est._optimizer
    est.set_params(momentum=0.5, dropout=0.3, schedule="step", schedule_params={"step_size": 1}).fit(X, y)
    assert est._optimizer is opt and opt.momentum == 0.5
    assert est.net_.dropout == 0.3 and sum(isinstance(layer, Dropout) for layer in est.net_.layers) == 2
    assert est._schedule.config()["name"] == "step" and est.n_iter_ == 4
    # the same layers as a network built with that dropout
    fresh = MLPClassifier(**{**est.get_params(), "warm_start": False, "max_iter": 1}).fit(X, y)
    assert [type(layer) for layer in est.net_.layers] == [type(layer) for layer in fresh.net_.layers]
    est.set_params(dropout=0.0).fit(X, y)
    assert not any(isinstance(layer, Dropout) for layer in est.net_.layers)


def test_warm_start_switches_optimizer_and_saves_it(tmp_path, digits_small):
    """A warm fit after set_params(optimizer=...) trains with the new optimizer (fresh state),
    and a model saved in between, whatever its params say, loads and continues exactly."""
    X, y = digits_small
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0, warm_start=True).fit(X, y)
    est.set_params(optimizer="sgd").fit(X, y)
    assert est._optimizer.name == "sgd" and est.t_ == est._optimizer.t == 2 * 3  # 600 rows / 200
    MLPClassifier.load(est.save(tmp_path / "a.npz"))
    # params changed after the last fit: the file holds the sgd state under optimizer='adam'
    est.set_params(optimizer="adam")
    back = MLPClassifier.load(est.save(tmp_path / "b.npz"))
    assert back.optimizer == "adam" and back._optimizer.name == "sgd"
    est.fit(X, y)
    back.fit(X, y)
    assert est._optimizer.name == back._optimizer.name == "adam"
    _assert_same_weights(est, back)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_restores_the_last_finite_weights(digits_small):
    from mlplab.errors import DivergenceError

    X, y = digits_small
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0, warm_start=True).fit(X, y)
    before = _weights(est)
    with pytest.raises(DivergenceError, match=r"non-finite at epoch 3.*weights \(after epoch 2\) and their optimizer state were restored"):
        est.set_params(learning_rate_init=1e30).fit(X, y)
    for a, b in zip(before, _weights(est)):
        np.testing.assert_array_equal(a, b)
    assert est.n_iter_ == len(est.loss_curve_) == 2
    assert np.isfinite(est.predict_proba(X)).all()
    # the optimizer state of the last finite epoch (the diverged one's moments were not finite): training goes on
    est.set_params(learning_rate_init=1e-3).fit(X, y)
    assert est.n_iter_ == 4 and all(np.isfinite(w).all() for w in _weights(est))
    # a first fit that diverges leaves its (finite) initial weights
    with pytest.raises(DivergenceError):
        MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=1e30, random_state=0).fit(X, y)


@pytest.mark.parametrize("params,match", [
    ({"hidden_layer_sizes": "55"}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": (5.7,)}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": (True,)}, "hidden_layer_sizes"),
    ({"class_weight": {0: -5.0}}, "class_weight of class 0"),
    ({"class_weight": {0: float("nan")}}, "class_weight of class 0"),
    ({"class_weight": np.ones(10)}, "class_weight must be"),
    ({"early_stopping": True, "validation_fraction": 1e-4}, "validation_fraction=0.0001"),
    ({"batch_size": True}, "batch_size"),
])
def test_bad_hyperparameters_raise_clear_errors(digits_small, params, match):
    X, y = digits_small
    est = MLPClassifier(max_iter=1, **params)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "net_")


# -- persistence ---------------------------------------------------------------------------------
def test_from_mlp_copies_the_callers_classes(digits_small):
    from mlplab.network import MLP

    X, _ = digits_small
    net = MLP([X.shape[1], 10, 3], "relu", "softmax", loss="cross_entropy", seed=0)
    labels = np.array([10, 20, 30])
    est = MLPClassifier.from_mlp(net, labels)
    before = est.predict(X)
    labels[...] = [7, 8, 9]  # the caller reuses its array
    np.testing.assert_array_equal(est.classes_, [10, 20, 30])
    np.testing.assert_array_equal(est.predict(X), before)


def test_save_load_roundtrip(tmp_path, digits_small):
    X, y = digits_small
    names = np.array(list("abcdefghij"))[y]
    kw = dict(hidden_layer_sizes=(16, 8), activation="tanh", batch_size=64, tol=0.0, random_state=4,
              class_weight={"a": 2.0})
    est = MLPClassifier(max_iter=3, **kw).fit(X, names)
    path = est.save(tmp_path / "model.npz")
    back = MLPClassifier.load(path)
    assert back.get_params() == est.get_params()
    assert back.classes_.dtype == est.classes_.dtype and np.array_equal(back.classes_, est.classes_)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert np.array_equal(back.predict(X), est.predict(X))
    assert back.loss_curve_ == est.loss_curve_ and back.n_iter_ == est.n_iter_
    # the saved optimizer/shuffle state continues exactly
    est.set_params(warm_start=True, max_iter=2).fit(X, names)
    back.set_params(warm_start=True, max_iter=2).fit(X, names)
    _assert_same_weights(est, back)
    with pytest.raises(ModelFileError):
        MLPClassifier.load(tmp_path / "missing.npz")


# -- one-vs-rest logistic regression -------------------------------------------------------------
def test_one_vs_rest(digits_small):
    X, y = digits_small
    o = OneVsRestLogisticRegression(learning_rate=0.5, max_iter=100, random_state=0).fit(X, y)
    assert o.coef_.shape == (10, 64) and o.intercept_.shape == (10,)
    assert o.score(X, y) > 0.9
    s = o.binary_scores(X)
    assert s.shape == (len(X), 10) and np.all((s > 0) & (s < 1))
    np.testing.assert_allclose(o.predict_proba(X), s / s.sum(axis=1, keepdims=True))
    assert np.array_equal(o.predict(X), s.argmax(axis=1))
    o.set_params(threshold=0.75)
    assert np.array_equal(o.predict_binary(X), s >= 0.75)
    o.set_params(threshold=1.5)
    with pytest.raises(ValueError, match="threshold"):
        o.predict_binary(X)


def test_one_vs_rest_joint_training_equals_separate_neurons(digits_small):
    """Training the k neurons as one layer is the same as k single-neuron fits."""
    from mlplab.network import MLP
    from mlplab.training import Trainer

    X, y = digits_small
    X, y = X[:200], y[:200]
    o = OneVsRestLogisticRegression(learning_rate=0.3, max_iter=20, dtype="float64", random_state=0).fit(X, y)
    for c in (0, 7):
        net = MLP([64, 1], "sigmoid", "sigmoid", "binary_cross_entropy", init="zeros", dtype="float64", seed=0)
        Trainer(net, "sgd", lr=0.3, batch_size=None).fit(X, (y == c).astype(np.int64), 20)
        np.testing.assert_allclose(o.coef_[c], net.dense_layers[0].W[:, 0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(o.intercept_[c], net.dense_layers[0].b[0], rtol=1e-12, atol=1e-14)


def test_one_vs_rest_balanced_subsets(digits_small):
    X, y = digits_small
    o = OneVsRestLogisticRegression(learning_rate=0.5, max_iter=50, n_pos=40, n_neg_per_class=5, init="uniform",
                                    threshold=0.75, random_state=0).fit(X, y)
    assert o.coef_.shape == (10, 64)
    assert o.predict_binary(X).shape == (len(X), 10)
    assert o.score(X, y) > 0.6
    again = OneVsRestLogisticRegression(**o.get_params()).fit(X, y)
    np.testing.assert_array_equal(again.coef_, o.coef_)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_float64_input_trains_exactly_as_its_float32_cast(digits_small, early_stopping):
    """Minibatches are gathered from a float64 input and cast one by one (no float32 copy of
    the whole set): the fit is bit-identical to fitting the float32 cast of the same data."""
    X, y = digits_small
    X64 = np.asarray(X, dtype=np.float64)
    kw = dict(hidden_layer_sizes=(16,), max_iter=5, batch_size=32, random_state=3, early_stopping=early_stopping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**kw).fit(X64, y)
        b = MLPClassifier(**kw).fit(X64.astype(np.float32), y)
    _assert_same_weights(a, b)
    assert a.loss_curve_ == b.loss_curve_


@pytest.mark.filterwarnings("default::sklearn.exceptions.ConvergenceWarning")
def test_convergence_warning_points_at_the_callers_fit(digits_small):
    X, y = digits_small
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(X, y)
    hits = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(hits) == 1 and hits[0].filename == __file__


def _spy_training_sets(monkeypatch):
    """The training rows of each one-vs-rest neuron, as the trainer receives them."""
    from mlplab.training import Trainer

    seen, fit = [], Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, X, y, *a, **kw: seen.append(X.copy()) or fit(self, X, y, *a, **kw))
    return seen


def test_one_vs_rest_subsets_cap_each_class_at_its_own_count(monkeypatch):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=5, n_informative=3, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, flip_y=0.2, random_state=0)
    label = {row.tobytes(): c for row, c in zip(X, y)}
    assert len(label) == len(X) and np.bincount(y).tolist() == [101, 100, 99]

    def counts(Xs):
        return np.bincount([label[row.tobytes()] for row in Xs], minlength=3).tolist()

    seen = _spy_training_sets(monkeypatch)
    kw = {"max_iter": 1, "dtype": "float64", "random_state": 0}
    OneVsRestLogisticRegression(n_pos=10**6, n_neg_per_class=10**6, **kw).fit(X, y)
    assert [counts(Xs) for Xs in seen] == [[101, 100, 99]] * 3  # all the data
    # a short class caps only itself; the default n_neg is n_pos // (k - 1) of the n_pos asked for
    m = (y != 2) | (np.arange(len(y)) % 20 == 0)
    assert np.bincount(y[m]).tolist() == [101, 100, 5]
    seen.clear()
    OneVsRestLogisticRegression(n_pos=100, **kw).fit(X[m], y[m])
    assert [counts(Xs) for Xs in seen] == [[100, 50, 5], [50, 100, 5], [50, 50, 5]]


def test_one_vs_rest_subsets_unchanged_where_no_class_is_short(digits_small, monkeypatch):
    """Where every class has enough samples, the subsets are those of ``balanced_ovr_subset``
    (the report's experiment) and those the estimator drew before each class had its own cap."""
    import hashlib

    from mlplab.data.splits import balanced_ovr_subset
    from mlplab.estimator import _ovr_subset

    X, y = digits_small
    for c, n_pos, n_neg in [(0, 40, 5), (3, 45, 5), (9, 50, 0)]:
        a = _ovr_subset(y, c, 10, n_pos, n_neg, np.random.default_rng(7))
        b = balanced_ovr_subset(y, c, n_pos=n_pos, n_neg_per_class=n_neg, seed=np.random.default_rng(7),
                                n_classes=10)
        np.testing.assert_array_equal(a, b)
    seen = _spy_training_sets(monkeypatch)
    for kw, digest in [({"n_pos": 40, "n_neg_per_class": 5}, "644c545ac0ffa38c"), ({"n_pos": 45}, "ccc0c8bc70459051")]:
        seen.clear()
        OneVsRestLogisticRegression(max_iter=1, random_state=0, dtype="float64", **kw).fit(X, y)
        got = hashlib.sha256(b"".join(Xs.tobytes() for Xs in seen)).hexdigest()[:16]
        assert got == digest, kw  # (the rows, in order, that the estimator trained on before the fix)


def test_one_vs_rest_sample_weight_equals_duplicated_rows():
    """Full batch: an integer weight is that many copies of the row; weight 0 leaves it out."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    y = rng.integers(0, 3, size=50)
    w = np.ones(50)
    w[[2, 9, 30]], w[[4, 5]] = [2.0, 3.0, 4.0], 0.0
    reps = w.astype(int)
    kw = dict(learning_rate=0.7, max_iter=40, init="normal", dtype="float64", random_state=3)
    weighted = OneVsRestLogisticRegression(**kw).fit(X, y, sample_weight=w)
    repeated = OneVsRestLogisticRegression(**kw).fit(np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    plain = OneVsRestLogisticRegression(**kw).fit(X, y)
    assert not np.allclose(plain.coef_, weighted.coef_)
    # all-ones weights are no weights, bit for bit
    ones = OneVsRestLogisticRegression(**kw).fit(X, y, sample_weight=np.ones(50))
    np.testing.assert_array_equal(ones.coef_, plain.coef_)


@pytest.mark.parametrize("n_pos", [None, 20])
def test_one_vs_rest_sample_weight_scale_free_in_minibatches(n_pos):
    """Weights are normalised per minibatch: a constant weight changes nothing, in the same
    minibatch order as an unweighted fit (minibatches of 7 rows, a partial last one)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    y = rng.integers(0, 3, size=60)
    kw = dict(learning_rate=0.3, max_iter=6, batch_size=7, n_pos=n_pos, init="normal", dtype="float64",
              random_state=5)
    plain = OneVsRestLogisticRegression(**kw).fit(X, y)
    scaled = OneVsRestLogisticRegression(**kw).fit(X, y, sample_weight=np.full(60, 2.5))
    np.testing.assert_allclose(scaled.coef_, plain.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(scaled.loss_curve_, plain.loss_curve_, rtol=1e-12)
    w = rng.random(60)
    a = OneVsRestLogisticRegression(**kw).fit(X, y, sample_weight=w)
    b = OneVsRestLogisticRegression(**kw).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.allclose(a.coef_, plain.coef_)


def test_one_vs_rest_sample_weight_errors():
    X = np.random.default_rng(2).normal(size=(30, 4))
    y = np.repeat([0, 1, 2], 10)
    o = OneVsRestLogisticRegression(max_iter=2)
    with pytest.raises(ValueError, match="non-zero|sum to zero"):
        o.fit(X, y, sample_weight=np.zeros(30))
    with pytest.raises(ValueError, match="[Nn]egative"):
        o.fit(X, y, sample_weight=-np.ones(30))
    with pytest.raises(ValueError):
        o.fit(X, y, sample_weight=np.ones(29))
    # a neuron's balanced subset whose weights are all zero: named, and nothing is fitted
    w = np.where(y == 1, 0.0, 1.0)
    with pytest.raises(ValueError, match="class 1's balanced subset"):
        OneVsRestLogisticRegression(max_iter=2, n_pos=10, n_neg_per_class=0).fit(X, y, sample_weight=w)
    assert not hasattr(o, "coef_")


def test_failed_refit_keeps_the_fitted_state(digits_small):
    from mlplab.errors import DivergenceError

    X, y = digits_small
    o = OneVsRestLogisticRegression(learning_rate=0.5, max_iter=30, random_state=0).fit(X, y)
    before = {k: v for k, v in vars(o).items() if k.endswith("_")}
    pred = o.predict(X)
    o.set_params(learning_rate=1e6, random_state=None)
    with pytest.raises(DivergenceError):
        o.fit(X[y < 2] * 1000, y[y < 2])
    with pytest.raises(ValueError, match="at least 2 classes"):
        o.fit(X[:, :5], np.zeros(len(y)))
    after = {k: v for k, v in vars(o).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)
    np.testing.assert_array_equal(o.predict(X), pred)
    # a first fit that fails leaves the estimator unfitted
    fresh = OneVsRestLogisticRegression(learning_rate=1e6, max_iter=30)
    with pytest.raises(DivergenceError):
        fresh.fit(X[y < 2] * 1000, y[y < 2])
    assert not [k for k in vars(fresh) if k.endswith("_")]
    # MLPClassifier: a refit refused before training keeps n_features_in_ with the old network
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    pred = est.predict(X)
    for bad_y, params in [(np.zeros(len(y)), {}), (y, {"class_weight": {99: 1.0}})]:
        with pytest.raises(ValueError):
            est.set_params(**params).fit(X[:, :5], bad_y)
        assert est.n_features_in_ == 64
        np.testing.assert_array_equal(est.predict(X), pred)


def test_one_vs_rest_proba_ranks_classes_like_decision_function():
    from scipy.special import expit
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    o = OneVsRestLogisticRegression(learning_rate=0.5, max_iter=200, random_state=0).fit(X, y)
    z = o.decision_function(X)
    np.testing.assert_array_equal(o.predict(X), o.classes_[o.predict_proba(X).argmax(axis=1)])
    # logits far above 37 saturate expit (1.0 in float64), set here rather than left to where
    # training happens to go on this CPU: a fit on unscaled pixels gets there on some machines only
    o.coef_ = np.random.default_rng(0).normal(0.0, 0.05, o.coef_.shape)
    o.intercept_ = np.linspace(60.0, 30.0, 10)
    p, z = o.predict_proba(X), o.decision_function(X)
    assert (np.sort(z, axis=1)[:, -2] > 37).mean() > 0.5  # rows whose two best scores are both 1.0
    np.testing.assert_array_equal(o.predict(X), o.classes_[p.argmax(axis=1)])
    np.testing.assert_array_equal(np.sign(p[:, :, None] - p[:, None, :]), np.sign(z[:, :, None] - z[:, None, :]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    # far below the sigmoid's range (expit underflows to 0): still ranked, not uniform
    o.coef_, o.intercept_ = np.zeros_like(o.coef_), -800.0 - 10.0 * np.arange(10)
    p = o.predict_proba(X[:1])[0]
    assert (np.diff(p) < 0).all() and p[0] > 0.99
    # two classes: column 1 is expit(decision_function), and ties go where predict goes
    b = OneVsRestLogisticRegression(learning_rate=0.5, max_iter=50, random_state=0).fit(X[y < 2], y[y < 2])
    np.testing.assert_allclose(b.predict_proba(X)[:, 1], expit(b.decision_function(X)), rtol=1e-15)
    b.coef_, b.intercept_ = np.zeros_like(b.coef_), np.array([40.0, 41.0])  # decision ~ 2.6e-18 > 0
    assert b.decision_function(X[:1])[0] > 0 and b.predict(X[:1])[0] == 1
    assert b.predict_proba(X[:1]).argmax() == 1
    b.intercept_ = np.array([40.0, 40.0])
    assert b.predict(X[:1])[0] == b.predict_proba(X[:1]).argmax() == 0


def test_one_vs_rest_save_and_load_round_trip(tmp_path):
    from sklearn.base import clone
    from sklearn.datasets import load_digits

    from mlplab.errors import ModelFileError
    from mlplab.estimator import MLPClassifier, OneVsRestLogisticRegression

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    labels = np.array(list("abcdefghij"))[y]  # arbitrary label types survive
    est = OneVsRestLogisticRegression(learning_rate=0.5, max_iter=20, threshold=0.75, n_pos=100,
                                      random_state=3).fit(X, labels)
    est.save(tmp_path / "ovr.npz")
    back = OneVsRestLogisticRegression.load(tmp_path / "ovr.npz")
    assert back.get_params() == est.get_params() and back.threshold == 0.75
    assert np.array_equal(back.classes_, est.classes_) and back.classes_.dtype == est.classes_.dtype
    np.testing.assert_array_equal(back.coef_, est.coef_)
    np.testing.assert_array_equal(back.intercept_, est.intercept_)
    for method in ("predict", "predict_proba", "decision_function", "predict_binary"):
        np.testing.assert_array_equal(getattr(back, method)(X), getattr(est, method)(X))
    assert back.loss_curve_ == est.loss_curve_ and back.n_iter_ == est.n_iter_ and back.seed_ == est.seed_
    np.testing.assert_array_equal(clone(back).fit(X, labels).coef_, est.coef_)  # same seed, same fit
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=1).fit(X, y).save(tmp_path / "mlp.npz")
    with pytest.raises(ModelFileError, match="not a saved OneVsRestLogisticRegression"):
        OneVsRestLogisticRegression.load(tmp_path / "mlp.npz")
