"""The training loop: learning, determinism, resuming, early stopping, divergence, numerics."""

import numpy as np
import pytest

from mlplab.errors import ConfigError, DivergenceError, TrainingInterrupted
from mlplab.losses import get_loss
from mlplab.network import MLP
from mlplab.training import EarlyStopping, LambdaCallback, Trainer


def test_overfits_a_small_subset(digits):
    X, y = digits
    X, y = X[:60], y[:60]
    net = MLP([64, 64, 10], "relu", "softmax", "cross_entropy", init="he", seed=0)
    Trainer(net, "adam", lr=0.01, batch_size=20).fit(X, y, 150)
    assert np.mean(net.predict(X) == y) == 1.0


def test_textbook_sigmoid_mse_learns(digits):
    X, y = digits
    net = MLP([64, 50, 10], "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1}, seed=123)
    h = Trainer(net, "sgd", lr=0.5, batch_size=50).fit(X, y, 40)
    assert h.accuracy[-1] > 0.9
    assert h.loss[-1] < h.loss[0]


def test_same_seed_identical_different_seed_different(digits):
    X, y = digits

    def run(seed):
        net = MLP([64, 20, 10], "tanh", "softmax", "cross_entropy", init="glorot", seed=seed, dropout=0.2)
        h = Trainer(net, "sgd", lr=0.1, batch_size=32).fit(X, y, 3)
        return net.get_weights(), h

    (wa, ha), (wb, hb), (wc, _) = run(1), run(1), run(2)
    assert all(np.array_equal(a, b) for a, b in zip(wa, wb))
    assert ha.loss == hb.loss and ha.accuracy == hb.accuracy
    assert not np.array_equal(wa[0], wc[0])


def test_float64_and_float32_agree_closely(digits):
    X, y = digits
    out = []
    for dt in ("float32", "float64"):
        net = MLP([64, 20, 10], "sigmoid", "softmax", "cross_entropy", init="glorot", seed=0, dtype=dt)
        Trainer(net, "sgd", lr=0.1, batch_size=64).fit(X, y, 2)
        assert net.parameters()[0].dtype == np.dtype(dt)
        out.append(net.get_weights()[0].astype(np.float64))
    np.testing.assert_allclose(out[0], out[1], atol=1e-4)


def test_interrupt_and_resume_is_bit_identical(digits):
    X, y = digits

    def make():
        net = MLP([64, 16, 10], "relu", "softmax", "cross_entropy", init="he", seed=7, dropout=0.1)
        return net, Trainer(net, "adam", lr=0.01, batch_size=50)

    ref_net, ref = make()
    ref.fit(X, y, 4)

    net, tr = make()
    calls = {"n": 0}
    original = tr.optimizer.step

    def step(grads):
        original(grads)
        calls["n"] += 1
        if calls["n"] == 45:  # in the middle of epoch 2
            tr.interrupt_requested = True

    tr.optimizer.step = step
    with pytest.raises(TrainingInterrupted, match="epoch 2"):
        tr.fit(X, y, 4)
    meta, arrays = tr.state_dict()
    weights = net.get_weights()

    net2, tr2 = make()
    net2.set_weights(weights)
    tr2.load_state_dict(meta, arrays)
    tr2.fit(X, y, 4)
    assert all(np.array_equal(a, b) for a, b in zip(ref_net.get_weights(), net2.get_weights()))
    assert tr2.history.loss == ref.history.loss


def test_full_batch_gradient_descent(digits):
    X, y = digits
    net = MLP([64, 32, 10], "relu", "softmax", "cross_entropy", init="he", seed=0)
    h = Trainer(net, "sgd", lr=0.5, batch_size=None).fit(X, y, 50)
    assert len(h) == 50 and h.loss[-1] < h.loss[0] and h.accuracy[-1] > 0.85


def test_drop_last_and_custom_batch_order(digits):
    X, y = digits
    seen = []
    net = MLP([64, 10, 10], seed=0)
    tr = Trainer(net, "sgd", lr=0.1, batch_size=100, drop_last=True,
                 batch_order=lambda epoch, n: seen.append(epoch) or np.arange(n)[::-1])
    tr.fit(X, y, 2)
    assert seen == [0, 1]
    assert tr.optimizer.t == 2 * (len(y) // 100)


def test_validation_history_and_early_stopping_restores_best(digits):
    X, y = digits
    Xtr, ytr, Xv, yv = X[:1200], y[:1200], X[1200:], y[1200:]
    net = MLP([64, 128, 10], "relu", "softmax", "cross_entropy", init="he", seed=0)
    best = {}

    def remember(trainer, logs):
        if "val_loss" in logs and (not best or logs["val_loss"] < best["val_loss"]):
            best.update(val_loss=logs["val_loss"], weights=trainer.net.get_weights())

    es = EarlyStopping("val_loss", patience=2)
    tr = Trainer(net, "adam", lr=0.05, batch_size=32, callbacks=[LambdaCallback(remember), es])
    h = tr.fit(Xtr, ytr, 200, Xv, yv)
    assert len(h) < 200 and tr.stop_reason.startswith("early stopping")
    assert all(v is not None for v in h.val_accuracy)
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), best["weights"]))


def _interrupt_after(epoch):
    def stop(trainer, logs):
        if logs["epoch"] == epoch:
            trainer.interrupt_requested = True
    return LambdaCallback(stop)


@pytest.mark.parametrize("after", [2, 6, 7])  # before, at and after the best epoch (6)
def test_a_resumed_early_stopping_run_stops_and_restores_as_the_uninterrupted_one(digits, tmp_path, after):
    """The early-stopping state (best value and epoch, epochs waited, best weights) travels in
    the checkpoint: interrupted after any epoch and resumed from the model file, the run stops at
    the same epoch and restores the same best weights, bit for bit. Before, the resumed callback
    started afresh (in a train run: 14 epochs instead of 8, best epoch 10 instead of 4)."""
    from mlplab.serialization import load_model, restore_trainer, save_model

    X, y = digits
    Xtr, ytr, Xv, yv = X[:1200], y[:1200], X[1200:], y[1200:]

    def make(*extra):
        net = MLP([64, 32, 10], "relu", "softmax", "cross_entropy", init="he", seed=1)
        return net, Trainer(net, {"name": "sgd", "momentum": 0.9}, lr=0.2, batch_size=32, seed=1,
                            callbacks=[*extra, EarlyStopping("val_loss", patience=3)])

    ref_net, ref = make()
    ref.fit(Xtr, ytr, 60, Xv, yv)
    assert ref.stop_reason.startswith("early stopping") and ref.restored_epoch == 6 and len(ref.history) == 10

    net, tr = make(_interrupt_after(after))
    with pytest.raises(TrainingInterrupted):
        tr.fit(Xtr, ytr, 60, Xv, yv)
    save_model(tmp_path / "checkpoint.npz", net, trainer=tr)
    saved = load_model(tmp_path / "checkpoint.npz")
    net2, tr2 = make()
    net2.set_weights(saved.net.parameters())
    restore_trainer(saved, tr2)
    tr2.fit(Xtr, ytr, 60, Xv, yv)
    assert tr2.restored_epoch == 6 and len(tr2.history) == 10 and tr2.history.val_loss == ref.history.val_loss
    assert all(np.array_equal(a, b) for a, b in zip(ref_net.get_weights(), net2.get_weights()))


def test_early_stopping_state_that_does_not_fit_is_refused_before_anything_changes(digits):
    X, y = digits
    net = MLP([64, 16, 10], "relu", "softmax", "cross_entropy", seed=0)
    tr = Trainer(net, "sgd", lr=0.1, batch_size=64, callbacks=[EarlyStopping("val_loss", patience=1)])
    tr.fit(X[:1000], y[:1000], 2, X[1000:], y[1000:])
    meta, arrays = tr.state_dict()
    assert meta["callbacks"]["EarlyStopping#0"]["n_best_weights"] == 4
    other = Trainer(MLP([64, 8, 10], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=64,
                    callbacks=[EarlyStopping("val_loss", patience=1)])
    bad = {k: v for k, v in arrays.items() if not k.startswith("optimizer/")}
    bad.update({k: np.zeros(p.shape) for k, p in zip(
        (f"optimizer/{k}" for k in other.optimizer.state_dict()[1]), other.optimizer.state_dict()[1].values())})
    with pytest.raises(ConfigError, match="best weights do not fit"):
        other.load_state_dict(meta, bad)
    assert other.epochs_done == 0 and other.callbacks[0].best is None
    mon = Trainer(MLP([64, 16, 10], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=64,
                  callbacks=[EarlyStopping("loss", patience=1)])
    with pytest.raises(ConfigError, match="monitors 'val_loss'"):
        mon.load_state_dict(meta, arrays)
    # a file from before callbacks were saved: the callback starts afresh, as it did then
    legacy = {k: v for k, v in meta.items() if k != "callbacks"}
    fresh = Trainer(MLP([64, 16, 10], "relu", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=64,
                    callbacks=[EarlyStopping("val_loss", patience=1)])
    fresh.load_state_dict(legacy, arrays)
    assert fresh.epochs_done == 2 and fresh.callbacks[0].best is None


def test_divergence_guard_names_the_epoch_and_keeps_good_weights(digits):
    X, y = digits
    net = MLP([64, 32, 10], "relu", "identity", "mse", init="he", seed=0)
    tr = Trainer(net, "sgd", lr=1000.0, batch_size=100)
    with pytest.raises(DivergenceError, match=r"at epoch 1 .*smaller learning rate"):
        tr.fit(X, y, 5)
    assert all(np.all(np.isfinite(p)) for p in net.parameters())


def test_bad_training_arguments(digits):
    X, y = digits
    net = MLP([64, 10], seed=0)
    with pytest.raises(ConfigError, match="larger than the training set"):
        Trainer(net, batch_size=5000).fit(X, y, 1)
    with pytest.raises(ConfigError, match="epochs"):
        Trainer(net).fit(X, y, 0)
    with pytest.raises(ConfigError, match="expects"):
        Trainer(net).fit(X[:, :10], y, 1)
    with pytest.raises(ConfigError, match="labels"):
        Trainer(net).fit(X, y + 5, 1)
    with pytest.raises(ConfigError):
        MLP([64, 0, 10])


def test_no_floating_point_warnings_in_a_full_run(digits):
    X, y = digits
    with np.errstate(all="raise"):
        for hid, out, loss in [("sigmoid", "sigmoid", "mse"), ("relu", "softmax", "cross_entropy"),
                               ("tanh", "sigmoid", "binary_cross_entropy")]:
            net = MLP([64, 32, 10], hid, out, loss, init="glorot", seed=0, dropout=0.1)
            Trainer(net, "adam", lr=0.01, batch_size=64, train_metrics="full").fit(X, y, 3, X[:200], y[:200])
            net.predict_proba(X)


@pytest.mark.parametrize("scale", [1.0, 1e2, 1e4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_finite_for_huge_logits(scale, dtype):
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(20, 5)) * scale).astype(dtype)
    y = rng.integers(0, 5, 20)
    for name in ("cross_entropy", "binary_cross_entropy", "mse"):
        loss = get_loss(name, 5, dtype)
        g = np.empty_like(z)
        with np.errstate(all="raise", under="ignore"):  # exp underflowing to 0 is exact enough
            v = loss.value_and_grad(z, y, g)
        assert np.isfinite(v) and np.all(np.isfinite(g))
        if name != "mse":
            assert np.all(np.isfinite(loss.link(z)))


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_prescaled_sgd_equals_the_plain_update(digits, l2):
    """The trainer folds lr into the output gradient for plain SGD; same result as p -= lr*g."""
    X, y = digits
    weights = []
    for prescale in (True, False):
        net = MLP([64, 20, 20, 10], "sigmoid", "sigmoid", "mse", init="normal", seed=4, dtype="float64", l2=l2)
        tr = Trainer(net, "sgd", lr=0.3, batch_size=64)
        if not prescale:
            tr.optimizer.prescale = lambda: None
        tr.fit(X, y, 3)
        weights.append(net.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_no_activation_sized_allocation_per_minibatch(digits, optimizer):
    """After the first epoch has allocated the buffers, a whole epoch of minibatches allocates
    nothing the size of an activation (128 x 512 float32 = 256 KiB); only small per-row vectors."""
    import tracemalloc

    X, y = digits
    X = X.astype(np.float32)
    net = MLP([64, 512, 10], "relu", "softmax", "cross_entropy", init="he", seed=0, dropout=0.1)
    tr = Trainer(net, optimizer, lr=0.01, batch_size=128)
    tr.fit(X, y, 1)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    tr._run_epoch(X, y, 128, False, 1)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert peak < 64 * 1024, peak


def test_fractional_labels_are_refused_not_truncated():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 4))
    trainer = Trainer(MLP([4, 3], "identity", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1, batch_size=5)
    with pytest.raises(ConfigError, match="integer class indices"):
        trainer.fit(X, np.full(20, 1.5), epochs=1)
    with pytest.raises(ConfigError, match="integer class indices"):
        trainer.fit(X, np.array([0.0, np.nan] * 10), epochs=1)
    assert trainer.epochs_done == 0
    trainer.fit(X, np.arange(20) % 3 * 1.0, epochs=1)  # whole-valued floats are class indices
    assert trainer.epochs_done == 1


def test_a_fit_after_an_early_stop_trains_again():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), np.arange(40) % 3
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=1e9)  # stops after the 2nd epoch
    trainer = Trainer(MLP([4, 3], "identity", "softmax", "cross_entropy", seed=0), "sgd", lr=0.1,
                      batch_size=10, callbacks=[stopper])
    trainer.fit(X, y, epochs=10)
    assert trainer.epochs_done == 2 and trainer.stop_reason
    trainer.fit(X, y, epochs=10)
    assert trainer.epochs_done == 3  # one more epoch, then the same criterion stops it again
