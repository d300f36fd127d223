"""QA-3 findings on the numerical core's edges: divergence handling, gradcheck's coverage, label checks."""

import numpy as np
import pytest

from mlplab import activations, layers
from mlplab.cli import main
from mlplab.errors import ConfigError, DivergenceError
from mlplab.gradcheck import gradcheck
from mlplab.network import MLP
from mlplab.stacked import StackedTrainer
from mlplab.training import EarlyStopping, LambdaCallback, Trainer


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _loud_data(n):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 20)) * 10, rng.integers(0, 4, n)


def _trainer(lr, hidden=8, dtype="float32", **kw):
    net = MLP([20, hidden, 4], "relu", "softmax", "cross_entropy", init="he", dtype=dtype, seed=1)
    return Trainer(net, "sgd", lr=lr, **{"batch_size": 20, **kw})


# -- F1: a minibatch's non-finite loss rejects the epoch whole ----------------------------------
@pytest.mark.parametrize("bind_steps", [True, False])
def test_mid_epoch_divergence_restores_the_weights_of_the_last_completed_epoch(bind_steps):
    """Before, the network kept the weights after the last finite minibatch (max|W| ~ 4e21),
    unlike the epoch-end check, stacked training and the estimator."""
    X, y = _loud_data(200)
    ref = _trainer(1e-4)
    ref.fit(X, y, 1)
    after_epoch_1 = ref.net.get_weights()

    def blow_up(trainer, logs):  # epoch 2 runs at a rate whose minibatch losses overflow
        trainer.base_lr = 1e3

    tr = _trainer(1e-4, callbacks=[LambdaCallback(blow_up)])
    tr.bind_steps = bind_steps
    with pytest.raises(DivergenceError, match="loss became non-finite at epoch 2 .*smaller learning rate"):
        tr.fit(X, y, 5)
    assert _same(tr.net.get_weights(), after_epoch_1)
    assert tr.epochs_done == 1 and len(tr.history) == 1
    meta, arrays = tr.state_dict()
    _trainer(1e-4).load_state_dict(meta, arrays)  # its own state loads


def test_mid_epoch_divergence_leaves_the_same_weights_alone_as_stacked():
    X, y = _loud_data(200)
    w0 = _trainer(1e3).net.get_weights()
    alone = _trainer(1e3)
    with pytest.raises(DivergenceError, match="epoch 1"):
        alone.fit(X, y, 5)
    stack = [_trainer(1e3), _trainer(1e-4)]
    errors = StackedTrainer(stack).fit(X, y, 5)
    assert isinstance(errors[0], DivergenceError) and errors[0].epoch == 1 and errors[1] is None
    assert _same(alone.net.get_weights(), w0) and _same(stack[0].net.get_weights(), w0)
    assert alone.epochs_done == stack[0].epochs_done == 0


# -- F2: an epoch rejected at its end is not counted -----------------------------------------------
def test_epoch_end_divergence_does_not_count_the_rejected_epoch():
    """Before, epochs_done counted it (2 against 1 history row), so the trainer's own
    state_dict() was refused by load_state_dict."""
    X, y = _loud_data(400)
    tr = _trainer(1e3, hidden=16, dtype="float64")
    with pytest.raises(DivergenceError, match="loss exploded to .* at epoch 2"):
        tr.fit(X, y, 5)
    assert tr.epochs_done == len(tr.history) == 1
    meta, arrays = tr.state_dict()
    fresh = _trainer(1e3, hidden=16, dtype="float64")
    fresh.load_state_dict(meta, arrays)
    assert fresh.epochs_done == 1
    stack = [_trainer(1e3, hidden=16, dtype="float64"), _trainer(1e-3, hidden=16, dtype="float64")]
    StackedTrainer(stack).fit(X, y, 5)
    assert stack[0].epochs_done == len(stack[0].history) == 1


# -- F3: gradcheck covers the unbound fused SGD step ----------------------------------------------
def _gc_net():
    return MLP([6, 5, 4, 3], "tanh", "softmax", "cross_entropy", dtype="float64", init="glorot", seed=0)


def _gc_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 6)), rng.integers(0, 3, 8)


def test_gradcheck_catches_a_wrong_unbound_fused_step(monkeypatch):
    """MLP.backward_step runs full-batch plain SGD, bind_steps=False, stacked training and the
    estimator; a fault in it passed every path before (3.4e-9)."""
    X, y = _gc_data()
    ok = gradcheck(_gc_net(), X, y)
    assert list(ok.per_path) == ["backward", "bound step", "fused SGD step", "unbound fused SGD step"]
    assert ok.passed(), ok.per_path
    original = layers.Dense.backward_step

    def wrong(self, dz, need_dx=True, decay=1.0, update_bias=True):
        r = original(self, dz, need_dx, decay, update_bias)
        self.W *= 1.0001
        return r

    monkeypatch.setattr(layers.Dense, "backward_step", wrong)
    net = _gc_net()
    before = net.get_weights()
    bad = gradcheck(net, X, y)
    assert not bad.passed()
    assert bad.per_path["unbound fused SGD step"] > 1e-3
    assert max(bad.per_path[p] for p in ("backward", "bound step", "fused SGD step")) < 1e-6
    assert _same(net.get_weights(), before)


def test_gradcheck_with_l2_checks_the_unbound_fused_step_with_its_decay():
    net = MLP([6, 5, 4, 3], "tanh", "sigmoid", "mse", dtype="float64", init="glorot", seed=0, l2=0.05)
    X, y = _gc_data()
    result = gradcheck(net, X, y)
    assert "unbound fused SGD step" in result.per_path and result.passed(), result.per_path


class _Cube(activations.Activation):
    """A user's activation: returns a new array, so the network cannot be bound."""

    name = "cube_for_qa26_test"

    def forward(self, z, out=None):
        return z ** 3

    def backward(self, a, dy, out=None, scratch=None):
        return dy * 3 * np.cbrt(a) ** 2


def test_gradcheck_of_a_network_that_cannot_be_bound_checks_both_unbound_paths():
    net = MLP([6, 5, 3], _Cube(), "softmax", "cross_entropy", dtype="float64", init="glorot", seed=0)
    X, y = _gc_data()
    result = gradcheck(net, X, y)
    assert list(result.per_path) == ["backward", "unbound fused SGD step"]
    assert result.passed(), result.per_path


def test_gradcheck_command_lists_the_unbound_fused_step(capsys):
    assert main(["gradcheck", "--sizes", "6,5,4,3", "--hidden-activation", "tanh"]) == 0
    assert "unbound fused SGD step" in capsys.readouterr().out


# -- F4: weights diverged by an epoch's last step --------------------------------------------------
def _f4_trainer(lr, **kw):
    net = MLP([20, 16, 4], "relu", "softmax", "cross_entropy", init="he", seed=1)
    return Trainer(net, "sgd", lr=lr, batch_size=None, **kw)


def _f4_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(100, 20)), rng.integers(0, 4, 100)


@pytest.mark.parametrize("train_metrics", ["running", "none"])
def test_a_last_step_that_diverges_the_weights_is_caught_at_the_end_of_its_epoch(train_metrics):
    """Before, fit returned normally (history loss 2.1) and predict_proba was NaN."""
    X, y = _f4_data()
    tr = _f4_trainer(1e38, train_metrics=train_metrics)
    w0 = tr.net.get_weights()
    with pytest.raises(DivergenceError, match=r"weights became non-finite or too large at epoch 1 "
                                              r"\(learning rate 1e\+38\); try a smaller learning rate") as err:
        tr.fit(X, y, 1)
    assert err.value.epoch == 1
    assert _same(tr.net.get_weights(), w0) and np.isfinite(tr.net.predict_proba(X)).all()
    assert tr.epochs_done == len(tr.history) == 0


def test_stacked_training_freezes_a_model_whose_last_step_diverged_its_weights():
    X, y = _f4_data()
    stack = [_f4_trainer(1e38), _f4_trainer(0.1)]
    w0 = stack[0].net.get_weights()
    errors = StackedTrainer(stack).fit(X, y, 1)
    assert isinstance(errors[0], DivergenceError) and "weights became non-finite or too large at epoch 1" in str(errors[0])
    assert errors[1] is None and stack[1].epochs_done == 1
    assert _same(stack[0].net.get_weights(), w0) and stack[0].epochs_done == 0


def test_finite_weights_is_false_for_nan_inf_and_overflowing_weights():
    net = MLP([3, 2, 2], "tanh", "softmax", "cross_entropy", seed=0)
    assert net.finite_weights()
    for bad in (np.nan, np.inf, 1e30):  # 1e30 squared overflows float32
        w = net.get_weights()
        w[2][0, 1] = bad
        other = MLP([3, 2, 2], "tanh", "softmax", "cross_entropy", seed=0)
        other.set_weights(w)
        assert not other.finite_weights(), bad


# -- F5: labels outside the classes refused on every public way in ---------------------------------
def _f5():
    X = np.random.default_rng(0).normal(size=(6, 5))
    return X, MLP([5, 4, 3], "tanh", "softmax", "cross_entropy", dtype="float64", seed=0)


@pytest.mark.parametrize("last, lo, hi", [(-1, -1, 2), (3, 0, 3)])
def test_evaluate_gradcheck_and_loss_and_gradients_refuse_labels_outside_the_classes(last, lo, hi):
    """Before: -1 was read as class 2 by evaluate and failed gradcheck's bound paths at 1.0;
    3 raised a raw IndexError."""
    X, net = _f5()
    y = np.array([0, 1, 2, 0, 1, last])
    tr = Trainer(net, "sgd", lr=0.1, batch_size=None)
    message = f"labels must lie in [0, 3), got range [{lo}, {hi}]"
    with pytest.raises(ConfigError) as fit_err:
        tr.fit(X, y, 1)
    assert str(fit_err.value) == "training " + message
    for call in (lambda: tr.evaluate(X, y), lambda: gradcheck(net, X, y), lambda: net.loss_and_gradients(X, y)):
        with pytest.raises(ConfigError) as err:
            call()
        assert str(err.value) == message


def test_evaluate_still_takes_whole_float_labels_and_checks_their_shape():
    X, net = _f5()
    tr = Trainer(net, "sgd", lr=0.1)
    y = np.array([0, 1, 2, 0, 1, 2])
    assert tr.evaluate(X, y.astype(float)) == tr.evaluate(X, y)
    with pytest.raises(ConfigError, match=r"labels have shape \(5,\), expected \(6,\)"):
        tr.evaluate(X, y[:5])
    with pytest.raises(ConfigError, match="integer class indices"):
        tr.evaluate(X, y + 0.5)


def test_one_output_unit_refuses_labels_other_than_0_and_1_in_evaluate():
    net = MLP([5, 4, 1], "tanh", "sigmoid", "binary_cross_entropy", dtype="float64", seed=0)
    X = np.random.default_rng(0).normal(size=(4, 5))
    with pytest.raises(ConfigError, match=r"labels must lie in \[0, 2\), got range \[0, 2\]"):
        Trainer(net, "sgd", lr=0.1).evaluate(X, np.array([0, 1, 2, 1]))


# -- the L2 note: the recorded and monitored losses are without the penalty (documented) ----------
def test_history_and_evaluate_leave_out_the_l2_penalty_which_loss_and_gradients_includes():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    net = MLP([5, 4, 3], "tanh", "softmax", "cross_entropy", dtype="float64", seed=0, l2=1.0)
    es = EarlyStopping(monitor="loss", patience=10)
    tr = Trainer(net, "sgd", lr=1e-3, batch_size=None, train_metrics="full", callbacks=[es])
    tr.fit(X, y, 1)
    data_loss = tr.evaluate(X, y)[0]
    assert tr.history.loss[0] == data_loss == es.best
    assert net.loss_and_gradients(X, y) == pytest.approx(data_loss + net.penalty(), rel=1e-12)
    assert net.penalty() > 0.05
