"""Round trips between mlplab, scikit-learn and PyTorch give identical predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from mlplab.estimator import MLPClassifier
from mlplab.interchange import from_sklearn, from_torch, to_sklearn, to_torch

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:400], y[:400]


def _params(est):
    return [p for p in est.net_.parameters()]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh"])
def test_sklearn_round_trip(data, binary, activation):
    X, y = data
    labels = np.where(y < 5, "low", "high") if binary else y
    sk = SkMLPClassifier(hidden_layer_sizes=(12, 7), activation=activation, max_iter=5,
                         random_state=0).fit(X, labels)
    est = from_sklearn(sk)
    assert est.net_.sizes[-1] == (1 if binary else 10)
    np.testing.assert_allclose(est.predict_proba(X), sk.predict_proba(X), rtol=1e-12, atol=1e-15)
    assert np.array_equal(est.predict(X), sk.predict(X))
    back = to_sklearn(est)
    for a, b in zip(back.coefs_ + back.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(back.predict_proba(X), sk.predict_proba(X), rtol=1e-12, atol=1e-15)
    assert np.array_equal(back.predict(X), sk.predict(X))


@pytest.mark.parametrize("binary", [False, True])
def test_mlplab_to_sklearn_float32(data, binary):
    X, y = data
    yy = (y == 3) if binary else y
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, yy)
    sk = to_sklearn(est)
    np.testing.assert_allclose(sk.predict_proba(X), est.predict_proba(X), rtol=1e-6, atol=1e-7)
    assert np.array_equal(sk.predict(X), est.predict(X))
    assert sk.score(X, yy) == est.score(X, yy)
    again = from_sklearn(sk)
    assert again.net_.dtype == np.float32
    for a, b in zip(_params(again), _params(est)):
        np.testing.assert_array_equal(a, b)
    # the converted sklearn model can keep training (its own optimizer, fresh state)
    sk.set_params(warm_start=True, max_iter=1).fit(X, yy)


def test_sigmoid_mse_has_no_sklearn_equivalent(data):
    X, y = data
    est = MLPClassifier(hidden_layer_sizes=(4,), output="sigmoid-mse", max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="mse"):
        to_sklearn(est)


@pytest.mark.parametrize("output", ["softmax", "sigmoid-mse"])
@pytest.mark.parametrize("n_classes", [2, 10])
def test_torch_round_trip(data, output, n_classes):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency (pip install 'mlplab[torch]')")
    X, y = data
    yy = y % n_classes
    est = MLPClassifier(hidden_layer_sizes=(16, 8), activation="tanh", output=output, max_iter=5,
                        random_state=0).fit(X, yy)
    model = to_torch(est)
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert lin[0].weight.shape == (16, 64) and lin[0].weight.dtype == torch.float32
    with torch.no_grad():
        out = model(torch.from_numpy(X.astype(np.float32))).numpy().astype(np.float64)
    raw = est.decision_function(X)
    if raw.ndim == 1:
        raw = raw[:, None] + (0.5 if output == "sigmoid-mse" else 0.0)
    np.testing.assert_allclose(out, raw, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        proba = to_torch(est, output_activation=True)(torch.from_numpy(X.astype(np.float32))).numpy()
    if proba.shape[1] == 1:
        p1 = est.predict_proba(X)[:, 1]
        np.testing.assert_allclose(proba[:, 0], p1, rtol=1e-6, atol=1e-6)
        assert np.array_equal((proba[:, 0] > 0.5), est.predict(X) == est.classes_[1])
    else:
        assert np.array_equal(proba.argmax(axis=1), est.predict(X))
        if output == "softmax":
            np.testing.assert_allclose(proba, est.predict_proba(X), rtol=1e-6, atol=1e-6)

    back = from_torch(model, est.classes_, output=output)  # Linear(., 1) + Sigmoid is ambiguous
    assert back.output == output and back.net_.loss.name == est.net_.loss.name
    for a, b in zip(_params(back), _params(est)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert np.array_equal(back.predict(X), est.predict(X))


def test_from_torch_trained_model(data):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency (pip install 'mlplab[torch]')")
    X, y = data
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 20), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(20, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    Xt, yt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(Xt), yt).backward()
        opt.step()
    model.eval()
    est = from_torch(model, classes=np.arange(10), alpha=0.0)
    with torch.no_grad():
        logits = model(Xt).numpy()
    assert np.array_equal(est.predict(X), logits.argmax(axis=1))
    np.testing.assert_allclose(est.decision_function(X), logits, rtol=1e-6, atol=1e-6)
    # it can be fine-tuned as an estimator
    est.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert est.n_iter_ == 2
    with pytest.raises(ValueError, match="unsupported module"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.GELU(), torch.nn.Linear(3, 2)), [0, 1])


def test_torch_round_trip_leaky_relu(data):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency (pip install 'mlplab[torch]')")
    X, y = data
    est = MLPClassifier(hidden_layer_sizes=(8,), activation="leaky_relu", max_iter=3, random_state=0).fit(X, y)
    model = to_torch(est)
    assert isinstance(model[1], torch.nn.LeakyReLU)
    back = from_torch(model, est.classes_)
    assert back.activation == "leaky_relu"
    for a, b in zip(_params(back), _params(est)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    # a slope the estimator cannot name is refused rather than silently changed
    model[1] = torch.nn.LeakyReLU(0.2)
    with pytest.raises(ValueError, match="negative_slope=0.2"):
        from_torch(model, est.classes_)


def test_torch_round_trip_keeps_dropout_and_takes_any_random_state(data):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency (pip install 'mlplab[torch]')")
    X, y = data
    est = MLPClassifier(hidden_layer_sizes=(8, 8), dropout=0.25, max_iter=3, random_state=0).fit(X, y)
    model = to_torch(est).eval()
    assert [type(m).__name__ for m in model].count("Dropout") == 2
    back = from_torch(model, est.classes_, random_state=np.random.RandomState(0))
    assert back.dropout == 0.25 and back.net_.dropout == 0.25
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    model[2] = torch.nn.Dropout(0.5)
    with pytest.raises(ValueError, match="different rates"):
        from_torch(model, est.classes_)


def test_to_sklearn_maps_momentum_exactly_and_full_batch_to_auto(data):
    X, y = data
    for momentum in (0.0, 0.5):
        est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, optimizer="sgd", momentum=momentum,
                            random_state=0).fit(X, y)
        assert to_sklearn(est).momentum == momentum
    # scikit-learn has no full batch (documented): the predictions are the same
    for bs in (None, "full"):
        est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, batch_size=bs, random_state=0).fit(X, y)
        sk = to_sklearn(est)
        assert sk.batch_size == "auto" and "full" in to_sklearn.__doc__
        np.testing.assert_allclose(sk.predict_proba(X), est.predict_proba(X), rtol=1e-6)


# -- conversions share no mutable state with their source ------------------------------------------
@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # (names set by hand)
def test_to_sklearn_copies_its_history_and_labels(data):
    X, y = data
    est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=5, random_state=0).fit(X, y)
    est.feature_names_in_ = np.array([f"p{i}" for i in range(X.shape[1])], dtype=object)  # (as from a DataFrame)
    scores, classes, names = list(est.validation_scores_), est.classes_.copy(), est.feature_names_in_.copy()
    sk = to_sklearn(est)
    assert sk.validation_scores_ == scores and sk.validation_scores_ is not est.validation_scores_
    for ours, theirs in ((est.classes_, sk.classes_), (est.feature_names_in_, sk.feature_names_in_)):
        np.testing.assert_array_equal(theirs, ours)
        assert not np.shares_memory(theirs, ours)
    sk.set_params(warm_start=True, max_iter=2).fit(X, y)  # appends to its validation_scores_
    sk.classes_[...], sk.feature_names_in_[...] = sk.classes_[::-1], "x"
    assert est.validation_scores_ == scores
    np.testing.assert_array_equal(est.classes_, classes)
    np.testing.assert_array_equal(est.feature_names_in_, names)


@pytest.mark.parametrize("early_stopping,how", [(False, "fit"), (False, "partial_fit"), (True, "fit")])
def test_to_sklearn_model_continues_training_in_sklearn(data, early_stopping, how):
    X, y = data
    est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=early_stopping, max_iter=3,
                        random_state=0).fit(X, y)
    weights = [a.copy() for a in _params(est)]
    sk = to_sklearn(est)
    # the best weights an early-stopping fit restores: est's, apart from the weights sklearn trains
    for best, w in zip(sk._best_coefs + sk._best_intercepts, sk.coefs_ + sk.intercepts_):
        np.testing.assert_array_equal(best, w)
        assert not np.shares_memory(best, w)
    # a huge tol: no epoch counts as an improvement, so scikit-learn increments the count it took over
    sk.set_params(tol=1e3, max_iter=1, warm_start=True)
    if how == "fit":
        sk.fit(X, y)
    else:
        sk.partial_fit(X, y)
    assert sk._no_improvement_count == est._no_improvement_count + 1
    if early_stopping and sk.best_validation_score_ == est.best_validation_score_:
        # (here: no better validation score) scikit-learn restored the best weights, est's
        for a, b in zip(sk.coefs_ + sk.intercepts_, weights[0::2] + weights[1::2]):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(_params(est), weights):  # est is untouched
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # (names set by hand)
def test_from_sklearn_and_from_torch_copy_labels_and_feature_names(data):
    X, y = data
    sk = SkMLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    sk.feature_names_in_ = np.array([f"p{i}" for i in range(X.shape[1])], dtype=object)  # (as from a DataFrame)
    est = from_sklearn(sk)
    before = est.predict(X)
    assert not np.shares_memory(est.classes_, sk.classes_)
    assert not np.shares_memory(est.feature_names_in_, sk.feature_names_in_)
    sk.classes_[...], sk.feature_names_in_[...] = sk.classes_[::-1], "x"
    np.testing.assert_array_equal(est.predict(X), before)
    assert est.feature_names_in_[0] == "p0"
    labels = np.arange(10)
    back = from_torch(to_torch(est), classes=labels)
    labels[...] = labels[::-1]
    np.testing.assert_array_equal(back.predict(X), before)


@pytest.mark.parametrize("case", ["from_mlp", "switched_on", "switched_off"])
def test_to_sklearn_starts_a_changed_stopping_rule_afresh(data, case):
    X, y = data
    if case == "from_mlp":  # (from_mlp has no stopping state; from_sklearn carries scikit-learn's)
        from mlplab.network import MLP

        net = MLP([X.shape[1], 8, 10], "relu", "softmax", loss="cross_entropy", dtype="float64", seed=0)
        est = MLPClassifier.from_mlp(net, np.arange(10), early_stopping=True)
    else:
        est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=case == "switched_off", max_iter=3,
                            random_state=0).fit(X, y).set_params(early_stopping=case == "switched_on")
    sk = to_sklearn(est).set_params(tol=1e3, max_iter=1, warm_start=True)  # tol: no improvement...
    sk.fit(X, y)
    assert sk._no_improvement_count == 0  # ... but over the first epoch of a fresh rule
    if sk.early_stopping:
        assert sk.best_loss_ is None and sk.best_validation_score_ == sk.validation_scores_[-1]
    else:
        assert sk.best_loss_ == sk.loss_curve_[-1]


# -- scikit-learn's t_ counts samples, mlplab's t_ counts optimizer steps ---------------------------
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("batch_size", [32, None])
def test_to_sklearn_t_is_the_samples_seen_as_in_sklearn(data, early_stopping, batch_size):
    """scikit-learn's ``t_`` is the number of training samples seen (``n_samples`` more per epoch,
    after the early-stopping split; its ``invscaling`` rate reads it), not optimizer steps."""
    X, y = data  # 400 rows: 32 does not divide them (and full batch has no batch size)
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, early_stopping=early_stopping, n_iter_no_change=50,
              random_state=0)
    est = MLPClassifier(batch_size=batch_size, **kw).fit(X, y)
    sk = SkMLPClassifier(batch_size=32, **kw).fit(X, y)
    n_train = 360 if early_stopping else 400
    assert est.n_iter_ == sk.n_iter_ == 3 and sk.t_ == 3 * n_train
    assert est.n_samples_seen_ == 3 * n_train and est.t_ == 3 * (1 if batch_size is None else -(-n_train // 32))
    assert to_sklearn(est).t_ == sk.t_


def test_samples_seen_accumulate_over_warm_fits_and_carry_to_sklearn(data, tmp_path):
    X, y = data
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, batch_size=50, warm_start=True,
                        random_state=0).fit(X, y)
    est.fit(X[:300], y[:300])  # warm: 2 more epochs of 300 rows
    est.partial_fit(X[:100], y[:100])
    seen = 2 * 400 + 2 * 300 + 100
    assert est.n_samples_seen_ == seen
    est.set_params(optimizer="sgd").partial_fit(X, y)  # a new optimizer: its steps restart, not the samples
    seen += 400
    assert est.t_ == 8 and est.n_samples_seen_ == seen
    est.save(tmp_path / "m.npz")
    loaded = MLPClassifier.load(tmp_path / "m.npz")
    assert loaded.n_samples_seen_ == seen and to_sklearn(loaded).t_ == seen
    # scikit-learn continues counting from there: its invscaling rate is that of `seen` samples
    sk = to_sklearn(est).set_params(solver="sgd", learning_rate="invscaling", power_t=0.5, max_iter=1,
                                    warm_start=True, learning_rate_init=0.1)
    sk.fit(X, y)
    assert sk.t_ == seen + 400
    assert sk._optimizer.learning_rate == pytest.approx(0.1 / (seen + 400 + 1) ** 0.5, rel=1e-15)
    # a fresh fit starts the count afresh; a model built by from_mlp has seen nothing
    est.set_params(warm_start=False, max_iter=1).fit(X, y)
    assert est.n_samples_seen_ == 400
    assert MLPClassifier.from_mlp(est.net_, est.classes_).n_samples_seen_ == 0


def test_from_sklearn_keeps_the_samples_seen(data):
    X, y = data
    sk = SkMLPClassifier(hidden_layer_sizes=(8,), max_iter=3, batch_size=64, random_state=0).fit(X, y)
    est = from_sklearn(sk)
    assert est.n_samples_seen_ == sk.t_ == 1200 and est.t_ == 0  # (its optimizer starts afresh)
    assert to_sklearn(est).t_ == sk.t_
    est.set_params(warm_start=True, max_iter=1).fit(X, y)
    assert est.n_samples_seen_ == 1600 and to_sklearn(est).t_ == 1600


def test_imports_refuse_non_finite_weights_and_mixed_dtypes(data):
    """A NaN or infinite weight is refused by name, not imported into a model that predicts
    nothing; a PyTorch model's layers must share float32 or float64 (bfloat16, mixed: refused)."""
    X, y = data
    sk = SkMLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    sk.coefs_[1][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"layer 1 \(weights\) holds NaN or infinite"):
        from_sklearn(sk)
    sk.coefs_[1][0, 0] = 0.0
    sk.intercepts_[0][2] = np.inf
    with pytest.raises(ValueError, match=r"layer 0 \(biases\) holds NaN or infinite"):
        from_sklearn(sk)
    torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency (pip install 'mlplab[torch]')")
    model = torch.nn.Sequential(torch.nn.Linear(64, 5), torch.nn.ReLU(), torch.nn.Linear(5, 10))
    with torch.no_grad():
        model[2].bias[3] = float("nan")
    with pytest.raises(ValueError, match=r"Linear layer 1 \(biases\) holds NaN or infinite"):
        from_torch(model, classes=np.arange(10))
    for first, second in ((torch.bfloat16, torch.bfloat16), (torch.float32, torch.float64)):
        mixed = torch.nn.Sequential(torch.nn.Linear(64, 5, dtype=first), torch.nn.ReLU(),
                                    torch.nn.Linear(5, 10, dtype=second))
        with pytest.raises(ValueError, match="must all be float32 or all float64"):
            from_torch(mixed, classes=np.arange(10))
    with torch.no_grad():
        model[2].bias[3] = 0.0
    assert from_torch(model.double(), classes=np.arange(10)).net_.dtype == np.float64
