"""QA round 26 (estimators): zero-weight minibatches, hyperparameters checked before any change,
save/load that reads what it writes and continues the stopping rule exactly, Adam's moments kept
when its betas change, fitted attributes carried by load/from_sklearn, ranked sigmoid-mse
probabilities, two-logit PyTorch heads, and the remaining validation gaps."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from mlplab.estimator import MLPClassifier, OneVsRestLogisticRegression
from mlplab.interchange import from_sklearn, from_torch, to_sklearn, to_torch

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_TORCH_REASON = "PyTorch is an optional dependency (pip install 'mlplab[torch]')"


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:400], y[:400]


def _weights(est):
    return [p.copy() for p in est.net_.parameters()]


def _assert_same_weights(a, b):
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)


def _snapshot(est) -> dict:
    """Every attribute of ``est`` but its hyperparameters, pickled one by one (order aside)."""
    params = est.get_params()
    return {k: pickle.dumps(v) for k, v in vars(est).items() if k not in params}


def _read(path):
    """(metadata, arrays) of a model file."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("__meta__").tobytes().decode()), arrays


def _write(path, meta, arrays):
    np.savez(path, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return path


def _split_of(est, y):
    """The (train, validation) indices an early-stopping fit of ``est`` (random_state set) draws."""
    from mlplab.data.splits import stratified_split
    from mlplab.network import STREAM_SPLIT, rng_for

    return stratified_split(np.searchsorted(np.unique(y), y), est.validation_fraction,
                            rng_for(est.random_state, STREAM_SPLIT))


# -- 1. minibatches of zero total weight -----------------------------------------------------------
@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_zero_weight_minibatch_makes_no_step_like_dropping_its_rows(digits, how):
    """Rows 64..127 have weight 0 and form whole minibatches (no shuffling): the fit is that on
    the other rows (it raised ZeroDivisionError)."""
    X, y = digits
    w = np.ones(len(y))
    w[64:128] = 0.0
    keep = w > 0
    kw = dict(hidden_layer_sizes=(8,), batch_size=32, shuffle=False, max_iter=3, tol=0.0, alpha=0.01,
              dtype="float64", random_state=0)
    if how == "fit":
        weighted = MLPClassifier(**kw).fit(X, y, sample_weight=w)
        dropped = MLPClassifier(**kw).fit(X[keep], y[keep])
    else:
        weighted, dropped = MLPClassifier(**kw), MLPClassifier(**kw)
        for _ in range(3):
            weighted.partial_fit(X, y, sample_weight=w, classes=np.arange(10))
            dropped.partial_fit(X[keep], y[keep], classes=np.arange(10))
    for a, b in zip(_weights(weighted), _weights(dropped)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(weighted.loss_curve_, dropped.loss_curve_, rtol=1e-12)
    assert weighted.t_ == dropped.t_ == 3 * 11  # (336 rows: 10 minibatches of 32 and one of 16)
    # the audit's cases: a sparse 0/1 mask with small minibatches, a class weighted 0 with batch_size=1
    mask = (np.random.default_rng(0).random(len(y)) < 0.1).astype(float)
    MLPClassifier(hidden_layer_sizes=(8,), batch_size=32, max_iter=2, random_state=0).fit(X, y, sample_weight=mask)
    est = MLPClassifier(hidden_layer_sizes=(8,), batch_size=1, max_iter=1, class_weight={0: 0.0},
                        random_state=0).fit(X[:100], y[:100])
    assert est.t_ == np.sum(y[:100] != 0)  # one step per row of positive weight


@pytest.mark.parametrize("part", ["training", "validation"])
def test_early_stopping_set_of_zero_weight_refused_before_any_change(digits, part):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=3, random_state=0)
    tr, va = _split_of(est, y)
    w = np.ones(len(y))
    w[tr if part == "training" else va] = 0.0
    with pytest.raises(ValueError, match=f"early_stopping: the sample weights of the {part} set .* sum to zero") as ei:
        est.fit(X, y, sample_weight=w)
    assert "\n" not in str(ei.value)
    assert not hasattr(est, "net_")
    est.fit(X, y)
    before = _snapshot(est)
    for warm in (False, True):
        with pytest.raises(ValueError, match=f"{part} set"):
            est.set_params(warm_start=warm).fit(X, y, sample_weight=w)
        assert _snapshot(est) == before


# -- 2. every hyperparameter checked before anything changes -------------------------------------
BAD = [
    ({"activation": "bogus"}, "activation must be one of"),
    ({"activation": None}, "activation must be one of"),
    ({"schedule": "bogus"}, "schedule must be one of"),
    ({"schedule": "step", "schedule_params": "x"}, "schedule_params must be None or a dict"),
    ({"schedule": "step", "schedule_params": {"bogus": 1}}, "schedule_params .* has no setting 'bogus'"),
    ({"schedule": "step", "schedule_params": {"step_size": 0}}, "schedule_params .* step_size must be >= 1"),
    ({"init": "bogus"}, "init must be one of"),
    ({"init_params": 5}, "init_params must be None or a dict"),
    ({"init": "normal", "init_params": {"std": -1.0}}, "init_params .* std must be"),
    ({"init": "he", "init_params": {"std": 1.0}}, "init_params .* has no setting 'std'"),
    ({"learning_rate_init": True}, "learning_rate_init must be"),
    ({"random_state": "x"}, "random_state must be"),
]


@pytest.mark.parametrize("params,match", BAD)
def test_bad_hyperparameter_refused_before_a_first_fit_changes_anything(digits, params, match):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, **params)
    with pytest.raises(ValueError, match=match) as ei:
        est.fit(X, y)
    assert "\n" not in str(ei.value)
    assert not [k for k in vars(est) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        est.predict(X[:5])


@pytest.mark.parametrize("params,match", BAD)
@pytest.mark.parametrize("warm", [False, True])
def test_bad_hyperparameter_refused_before_a_refit_changes_anything(digits, params, match, warm):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0, warm_start=warm).fit(X, y)
    before, pred = _snapshot(est), est.predict(X)
    # (a warm fit that also switches the optimizer: the Adam state must survive the refusal)
    est.set_params(optimizer="sgd", **params)
    with pytest.raises(ValueError, match=match):
        est.fit(X[:, :20], y % 2) if not warm else est.fit(X, y)
    assert _snapshot(est) == before
    assert est._optimizer.name == "adam" and est.t_ == 6
    np.testing.assert_array_equal(est.predict(X), pred)


def test_activation_none_is_refused_not_identity(digits):
    X, y = digits
    with pytest.raises(ValueError, match="activation must be one of .* got None"):
        MLPClassifier(activation=None, max_iter=1).fit(X, y)
    assert MLPClassifier(activation="identity", hidden_layer_sizes=(4,), max_iter=1).fit(X, y).net_


# -- 3. what save writes, load reads ----------------------------------------------------------------
@pytest.mark.parametrize("hidden", [10, np.int64(10), [10], (10,)])
def test_save_load_any_accepted_hidden_layer_sizes(tmp_path, digits, hidden):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=hidden, max_iter=2, random_state=0).fit(X, y)
    back = MLPClassifier.load(est.save(tmp_path / "m.npz"))
    assert back.get_params() == est.get_params()  # (np.int64(10) == 10)
    assert type(back.hidden_layer_sizes) is type(hidden if not isinstance(hidden, np.integer) else 10)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("change", [{"hidden_layer_sizes": (20,)}, {"dtype": "float64"}, {"activation": "tanh"},
                                    {"output": "sigmoid-mse"}])
def test_structural_params_changed_after_the_fit_save_and_load_as_in_memory(tmp_path, digits, change):
    """The file keeps the params as set; the loaded estimator behaves as the in-memory one: it
    predicts with the fitted network, a warm fit refuses the change, a fresh fit applies it."""
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(10,), max_iter=2, random_state=0).fit(X, y).set_params(**change)
    back = MLPClassifier.load(est.save(tmp_path / "m.npz"))
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    name = next(iter(change))
    for model in (est, back):
        with pytest.raises(ValueError, match=f"{name} changed from .* refit without warm_start"):
            copy.deepcopy(model).set_params(warm_start=True).fit(X, y)
    a, b = est.set_params(warm_start=False).fit(X, y), back.fit(X, y)
    _assert_same_weights(a, b)
    assert a.net_.sizes == b.net_.sizes


def test_dropout_changed_after_the_fit_is_kept_through_save_load(tmp_path, digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(10,), max_iter=2, warm_start=True, random_state=0).fit(X, y)
    est.set_params(dropout=0.3)
    back = MLPClassifier.load(est.save(tmp_path / "m.npz"))
    assert back.dropout == 0.3
    est.fit(X, y)
    back.fit(X, y)
    _assert_same_weights(est, back)


def test_save_refuses_invalid_params_with_fits_error(tmp_path, digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="schedule must be one of"):
        est.set_params(schedule="bogus").save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# -- 4 and 5. load() continues the stopping rule exactly ----------------------------------------
def _continue_both(tmp_path, est, X, y, **params):
    """(in-memory copy, loaded file) after the same warm fit with ``params``, set before saving."""
    est = copy.deepcopy(est).set_params(warm_start=True, **params)
    path = est.save(tmp_path / "s.npz")
    b = MLPClassifier.load(path)
    for attr in _STATE:  # the same state before the fit (best_loss_ None: the validation rule's)
        assert getattr(b, attr) == getattr(est, attr), attr
    return est.fit(X, y), b.fit(X, y)


_STATE = ("n_iter_", "t_", "loss_", "loss_curve_", "best_loss_", "_no_improvement_count", "validation_scores_",
          "best_validation_score_")


def _assert_same_state(a, b):
    _assert_same_weights(a, b)
    for attr in _STATE:
        assert getattr(a, attr) == getattr(b, attr), attr


def test_loaded_early_stopping_model_restores_its_best_weights(tmp_path, digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(20,), early_stopping=True, n_iter_no_change=3, learning_rate_init=0.05,
                        random_state=0).fit(X, y)
    a, b = _continue_both(tmp_path, est, X, y, max_iter=2)
    _assert_same_state(a, b)
    _assert_same_weights(a, est)  # (no better score in 2 epochs: the best weights, est's, restored)


def test_best_weights_that_differ_from_the_weights_are_saved(tmp_path, digits):
    """As after a DivergenceError in an early-stopping fit: the weights are the last finite ones,
    the best weights those of the best epoch."""
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(20,), early_stopping=True, n_iter_no_change=3, learning_rate_init=0.05,
                        random_state=0).fit(X, y)
    best = _weights(est)
    est.net_.set_weights([w + 1.0 for w in best])
    a, b = _continue_both(tmp_path, est, X, y, max_iter=1, tol=1.0)
    _assert_same_state(a, b)
    assert a.validation_scores_[-1] < a.best_validation_score_
    for w, v in zip(_weights(a), best):  # (the epoch did not beat the best: its weights restored)
        np.testing.assert_array_equal(w, v)


@pytest.mark.parametrize("switch_to", [True, False])
def test_loaded_model_switches_the_stopping_rule_as_in_memory(tmp_path, digits, switch_to):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(10,), max_iter=6, early_stopping=not switch_to, n_iter_no_change=2,
                        tol=1e-2, random_state=0).fit(X, y)
    assert est._no_improvement_count > 0 or switch_to
    a, b = _continue_both(tmp_path, est, X, y, early_stopping=switch_to, max_iter=6)
    _assert_same_state(a, b)
    assert (a.best_loss_ is None) == switch_to and a.n_iter_ > est.n_iter_


def test_files_without_the_stopping_rule_still_load(tmp_path, digits):
    """Files written before the rule and best weights were recorded: derived from the params."""
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(20,), early_stopping=True, n_iter_no_change=3, learning_rate_init=0.05,
                        random_state=0).fit(X, y)
    meta, arrays = _read(est.save(tmp_path / "new.npz"))
    for key in ("stopping_rule", "best_weights"):
        del meta["training"][key]
    back = MLPClassifier.load(_write(tmp_path / "old.npz", meta, arrays))
    a = copy.deepcopy(est).set_params(warm_start=True, max_iter=2).fit(X, y)
    _assert_same_state(a, back.set_params(warm_start=True, max_iter=2).fit(X, y))


# -- 6. Adam's moments are kept when its betas change (PyTorch's behaviour) --------------------------
@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("name,changes", [
    ("adam", [{"beta1": 0.5}, {"beta2": 0.9}, {"beta1": 0.8, "beta2": 0.99}]),
    ("rmsprop", [{"alpha": 0.9}, {"alpha": 0.5}]),
])
def test_set_hyperparameters_keeps_the_moments_as_torch_does(monkeypatch, large, name, changes):
    torch = pytest.importorskip("torch", reason=_TORCH_REASON)
    from mlplab.optimizers import Optimizer, get_optimizer

    if large:  # (scaled sums: the change goes into the scale)
        monkeypatch.setattr(Optimizer, "scaled_min_size", 1)
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((4, 3)) for _ in range(15)]
    p = np.ones((4, 3))
    tp = torch.nn.Parameter(torch.ones(4, 3, dtype=torch.float64))
    opt = get_optimizer({"name": name}, [p], lr=0.01)
    topt = (torch.optim.Adam([tp], lr=0.01) if name == "adam" else torch.optim.RMSprop([tp], lr=0.01))
    for k, g in enumerate(grads):
        if k % 5 == 4 and changes:
            change = changes.pop(0)
            opt.set_hyperparameters(**change)
            group = topt.param_groups[0]
            if name == "adam":
                group["betas"] = (opt.beta1, opt.beta2)
            else:
                group["alpha"] = opt.alpha
        opt.step([g.copy()])
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=0, atol=1e-14)


def test_set_hyperparameters_checks_before_changing():
    from mlplab.errors import ConfigError
    from mlplab.optimizers import get_optimizer

    p = np.ones(3)
    opt = get_optimizer("adam", [p], lr=0.1)
    opt.step([np.ones(3)])
    m = opt.state["m_scaled"][0].copy()
    for bad, match in (({"beta1": 1.0}, "beta1 must be in"), ({"beta1": 0.5, "momentum": 0.1}, "no hyperparameter")):
        with pytest.raises(ConfigError, match=match):
            opt.set_hyperparameters(**bad)
        assert opt.beta1 == 0.9 and np.array_equal(opt.state["m_scaled"][0], m)
    sgd = get_optimizer({"name": "sgd", "momentum": 0.9}, [p], lr=0.1)
    with pytest.raises(ConfigError, match="cannot change the state's layout"):
        sgd.set_hyperparameters(momentum=0.0)
    sgd.set_hyperparameters(momentum=0.5)  # the velocity is the plain sum: kept as it is
    assert sgd.momentum == 0.5


def test_estimator_beta_change_between_warm_fits_follows_torch(digits):
    """Full-batch Adam, 3 epochs, betas changed by set_params, 3 more: torch.optim.Adam from the same
    weights with its betas changed at the same step. (A negligible epsilon: the estimator adds it
    where scikit-learn does, torch elsewhere.)"""
    torch = pytest.importorskip("torch", reason=_TORCH_REASON)
    from mlplab.network import MLP

    X, y = digits
    X, y = X[:200], y[:200]
    net = MLP([64, 8, 10], "tanh", "softmax", loss="cross_entropy", init="glorot", dtype="float64", seed=0)
    est = MLPClassifier.from_mlp(net, np.arange(10), batch_size=None, alpha=0.0, learning_rate_init=0.01,
                                 max_iter=3, tol=0.0, warm_start=True, epsilon=1e-30)
    model = to_torch(est)
    est.fit(X, y)
    est.set_params(beta_1=0.5, beta_2=0.9).fit(X, y)
    topt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-30)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for step in range(6):
        if step == 3:
            topt.param_groups[0]["betas"] = (0.5, 0.9)
        topt.zero_grad()
        torch.nn.functional.cross_entropy(model(Xt), yt).backward()
        topt.step()
    lin = [m for m in model if isinstance(m, torch.nn.Linear)]
    theirs = [a for m in lin for a in (m.weight.detach().numpy().T, m.bias.detach().numpy())]
    for ours, t in zip(_weights(est), theirs):
        np.testing.assert_allclose(ours, t, rtol=1e-10, atol=1e-13)


# -- 7. load() and from_sklearn() carry the fitted attributes -----------------------------------------
def test_load_sets_loss_(tmp_path, digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    assert MLPClassifier.load(est.save(tmp_path / "m.npz")).loss_ == est.loss_


@pytest.mark.parametrize("early_stopping", [False, True])
def test_from_sklearn_carries_the_fitted_record_and_stopping_state(tmp_path, digits, early_stopping):
    X, y = digits
    sk = SkMLPClassifier(hidden_layer_sizes=(8,), max_iter=15, early_stopping=early_stopping, n_iter_no_change=3,
                         random_state=0).fit(X, y)
    est = from_sklearn(sk)
    assert est.loss_ == sk.loss_ and est.loss_curve_ == sk.loss_curve_
    assert est.best_loss_ == sk.best_loss_ and est._no_improvement_count == sk._no_improvement_count
    if early_stopping:
        assert est.validation_scores_ == sk.validation_scores_ and est.validation_scores_ is not sk.validation_scores_
        assert est.best_validation_score_ == sk.best_validation_score_
        assert len(est.validation_loss_curve_) == len(sk.validation_scores_)  # (NaN: not recorded)
        for a, b in zip(est._best_weights, [a for pair in zip(sk._best_coefs, sk._best_intercepts) for a in pair]):
            np.testing.assert_array_equal(a, b)
    else:
        assert est.validation_scores_ is None and est.best_validation_score_ is None
    # and back: scikit-learn's own state
    back = to_sklearn(est)
    assert back.best_loss_ == sk.best_loss_ and back._no_improvement_count == sk._no_improvement_count
    assert back.validation_scores_ == sk.validation_scores_
    # saved and loaded (the validation losses scikit-learn did not record stay unknown), then continued
    loaded = MLPClassifier.load(est.save(tmp_path / "sk.npz"))
    assert loaded.validation_scores_ == est.validation_scores_
    if early_stopping:
        assert np.isnan(loaded.validation_loss_curve_).all()
    a = copy.deepcopy(est).set_params(warm_start=True, max_iter=3).fit(X, y)
    _assert_same_state(a, loaded.set_params(warm_start=True, max_iter=3).fit(X, y))


# -- 8. sigmoid-mse probabilities rank the classes as predict does -------------------------------------
def test_sigmoid_mse_proba_keeps_the_order_of_tiny_outputs(digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(10,), output="sigmoid-mse", learning_rate_init=0.05, max_iter=50,
                        random_state=0).fit(X[:300], y[:300])
    Xs = X * 1000  # far from the data: outputs down to 1e-240
    np.testing.assert_array_equal(est.classes_[est.predict_proba(Xs).argmax(axis=1)], est.predict(Xs))
    # outputs about exp(-600 + 10 k): ranked by k, not uniform
    est.net_.dense_layers[-1].W[...] = 0.0
    est.net_.dense_layers[-1].b[...] = -600.0 + 10.0 * np.arange(10)
    p = est.predict_proba(X[:3])
    assert (np.diff(p, axis=1) > 0).all() and est.predict(X[:3]).tolist() == [9, 9, 9]
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # equal outputs stay equal (the first class, as predict takes it)
    est.net_.dense_layers[-1].b[...] = -600.0
    p = est.predict_proba(X[:3])
    assert (p == p[:, :1]).all() and np.allclose(p, 0.1) and est.predict(X[:3]).tolist() == [0, 0, 0]


# -- 9. from_torch folds a two-logit head into one unit -------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("hidden", [True, False])
def test_from_torch_folds_two_logits_for_two_classes(digits, dtype, softmax, hidden):
    torch = pytest.importorskip("torch", reason=_TORCH_REASON)
    X, y = digits
    yb = (y >= 5).astype(np.int64)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    torch.manual_seed(0)
    layers = [torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)] if hidden else [torch.nn.Linear(64, 2)]
    model = torch.nn.Sequential(*layers).to(tdt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    Xt = torch.from_numpy(X).to(tdt)
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(Xt), torch.from_numpy(yb)).backward()
        opt.step()
    if softmax:
        model.append(torch.nn.Softmax(dim=1))
    est = from_torch(model, ["neg", "pos"])
    assert est.n_outputs_ == 1 and est.out_activation_ == "logistic" and est.net_.dtype == np.dtype(dtype)
    with torch.no_grad():
        out = model(Xt).double()
        proba = (out if softmax else torch.softmax(out, dim=1)).numpy()
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(est.predict_proba(X), proba, rtol=tol, atol=tol)
    np.testing.assert_array_equal(est.predict(X), np.array(["neg", "pos"])[proba.argmax(axis=1)])
    est.set_params(warm_start=True, max_iter=1).fit(X, np.array(["neg", "pos"])[yb])  # and it trains on


def test_from_torch_refuses_two_sigmoid_units_for_two_classes():
    torch = pytest.importorskip("torch", reason=_TORCH_REASON)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2), torch.nn.Sigmoid())
    with pytest.raises(ValueError, match="Sigmoid over 2 output units for 2 classes is not supported"):
        from_torch(model, [0, 1])
    assert "folded" in from_torch.__doc__ and "refused" in from_torch.__doc__


# -- 10. the remaining validation gaps; get_params after load ------------------------------------------
@pytest.mark.parametrize("params,match", [
    ({"max_iter": True}, "max_iter must be an int"),
    ({"n_iter_no_change": True}, "n_iter_no_change must be an int"),
    ({"alpha": True}, "alpha must be a finite number >= 0"),
    ({"alpha": float("inf")}, "alpha must be a finite number >= 0"),
    ({"alpha": float("nan")}, "alpha must be a finite number >= 0"),
    ({"tol": float("inf")}, "tol must be a finite number >= 0"),
    ({"tol": -1.0}, "tol must be a finite number >= 0"),
    ({"momentum": True}, "momentum must be in"),
    ({"beta_1": np.True_}, "beta_1 must be in"),
    ({"dropout": False}, "dropout must be in"),
    ({"validation_fraction": True}, "validation_fraction must be in"),
    ({"epsilon": True}, "epsilon must be"),
    ({"class_weight": {0: True}}, "class_weight of class 0"),
    ({"shuffle": "no"}, "shuffle must be True or False"),
    ({"warm_start": "x"}, "warm_start must be True or False"),
    ({"nesterov": "x"}, "nesterov must be True or False"),
    ({"early_stopping": 1}, "early_stopping must be True or False"),
    ({"verbose": "loud"}, "verbose must be"),
])
def test_more_bad_hyperparameters_refused(digits, params, match):
    X, y = digits
    est = MLPClassifier(**{"hidden_layer_sizes": (4,), "max_iter": 1, **params})
    with pytest.raises(ValueError, match=match) as ei:
        est.fit(X, y)
    assert "\n" not in str(ei.value) and not hasattr(est, "net_")


@pytest.mark.parametrize("params,match", [
    ({"max_iter": True}, "max_iter"), ({"learning_rate": True}, "learning_rate"),
    ({"learning_rate": float("inf")}, "learning_rate"), ({"batch_size": True}, "batch_size"),
    ({"n_pos": True}, "n_pos"), ({"threshold": True}, "threshold"), ({"init": "bogus"}, "init"),
])
def test_one_vs_rest_refuses_bools_and_bad_values(digits, params, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        OneVsRestLogisticRegression(**{"max_iter": 1, **params}).fit(X, y)


def test_get_params_after_load_are_the_values_set(tmp_path, digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=[12, 6], activation="logistic", class_weight={3: 2.0},
                        schedule="plateau", schedule_params={"patience": 2}, init="normal",
                        init_params={"std": 0.05}, max_iter=2, random_state=1).fit(X, y)
    back = MLPClassifier.load(est.save(tmp_path / "m.npz"))
    assert back.get_params() == est.get_params()
    assert back.hidden_layer_sizes == [12, 6] and back.activation == "logistic"
    est.set_params(activation="Relu", hidden_layer_sizes=(12, 6))
    assert MLPClassifier.load(est.save(tmp_path / "m2.npz")).activation == "Relu"
    # (documented normalisations: NumPy values become Python ones, a dtype class its name)
    est.set_params(activation="logistic", dtype=np.float32, alpha=np.float64(1e-3))
    back = MLPClassifier.load(est.save(tmp_path / "m3.npz"))
    assert back.dtype == "float32" and type(back.alpha) is float and back.alpha == 1e-3
    assert "'float64'" in MLPClassifier.load.__doc__


def test_saved_params_json_tags_lists(tmp_path, digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=[4], max_iter=1, random_state=0).fit(X, y)
    meta, _ = _read(est.save(tmp_path / "m.npz"))
    assert meta["training"]["params"]["hidden_layer_sizes"] == {"__list__": [4]}
    json.dumps(meta)
