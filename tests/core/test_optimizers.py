"""One step of each optimizer equals its formula computed by hand; schedules likewise."""

import json
import math

import numpy as np
import pytest

from mlplab.errors import ConfigError
from mlplab.optimizers import Optimizer, get_optimizer
from mlplab.schedules import get_schedule


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(4, 3))
    grads = [rng.normal(size=(4, 3)) for _ in range(3)]
    return p, grads


def _run(spec, p, grads, **kw):
    q = p.copy()
    opt = get_optimizer(spec, [q], **kw)
    for g in grads:
        opt.step([g.copy()])
    return q


def test_sgd():
    p, gs = _setup()
    ref = p.copy()
    for g in gs:
        ref = ref - 0.1 * g
    np.testing.assert_allclose(_run("sgd", p, gs, lr=0.1), ref, rtol=1e-12)


def test_sgd_weight_decay():
    p, gs = _setup()
    ref = p.copy()
    for g in gs:
        ref = ref - 0.1 * (g + 0.01 * ref)
    np.testing.assert_allclose(_run({"name": "sgd", "weight_decay": 0.01}, p, gs, lr=0.1), ref, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    p, gs = _setup()
    ref, v = p.copy(), np.zeros_like(p)
    for g in gs:
        v = 0.9 * v + g
        step = g + 0.9 * v if nesterov else v
        ref = ref - 0.05 * step
    got = _run({"name": "sgd", "momentum": 0.9, "nesterov": nesterov}, p, gs, lr=0.05)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_rmsprop():
    p, gs = _setup()
    ref, s = p.copy(), np.zeros_like(p)
    for g in gs:
        s = 0.99 * s + 0.01 * g * g
        ref = ref - 0.001 * g / (np.sqrt(s) + 1e-8)
    np.testing.assert_allclose(_run("rmsprop", p, gs, lr=0.001), ref, rtol=1e-12)


def test_adam():
    p, gs = _setup()
    ref, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mhat, vhat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
        ref = ref - 0.01 * mhat / (np.sqrt(vhat) + 1e-8)
    np.testing.assert_allclose(_run("adam", p, gs, lr=0.01), ref, rtol=1e-10)


@pytest.mark.parametrize("eps", [1e-8, 0.3])
def test_adam_eps_on_v_is_scikit_learns_adam(eps):
    """``eps_on="v"`` steps as scikit-learn's own AdamOptimizer, and differs from PyTorch's
    placement when eps is not negligible."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

    rng = np.random.default_rng(3)
    p = rng.normal(size=(6, 5))
    grads = [rng.normal(scale=1e-3, size=(6, 5)) for _ in range(40)]
    theirs = [p.copy()]
    sk = AdamOptimizer(theirs, learning_rate_init=0.01, epsilon=eps)
    for g in grads:
        sk.update_params(theirs, [g])
    ours = _run({"name": "adam", "eps": eps, "eps_on": "v"}, p, grads, lr=0.01)
    np.testing.assert_allclose(ours, theirs[0], rtol=1e-12, atol=1e-15)
    torch_like = _run({"name": "adam", "eps": eps}, p, grads, lr=0.01)
    if eps > 1e-3:
        assert np.abs(torch_like - theirs[0]).max() > 1e-4


def test_adam_eps_on_is_saved_in_its_config():
    opt = get_optimizer({"name": "adam", "eps_on": "v"}, [np.zeros(3)], lr=0.1)
    assert opt.config()["eps_on"] == "v"
    assert get_optimizer(json.loads(json.dumps(opt.config())), [np.zeros(3)]).eps_on == "v"
    assert get_optimizer("adam", [np.zeros(3)], lr=0.1).eps_on == "v_hat"


def test_state_round_trip_continues_identically():
    p, gs = _setup()
    a = p.copy()
    opt = get_optimizer("adam", [a], lr=0.01)
    opt.step([gs[0].copy()])
    meta, arrays = opt.state_dict()
    b = a.copy()
    opt2 = get_optimizer("adam", [b], lr=0.01)
    opt2.load_state_dict(meta, {k: v.copy() for k, v in arrays.items()})
    for g in gs[1:]:
        opt.step([g.copy()])
        opt2.step([g.copy()])
    assert np.array_equal(a, b)


@pytest.mark.parametrize("spec,kw", [("sgd", {"lr": -1}), ("sgd", {"lr": 0}), ("bogus", {"lr": 1}),
                                     ({"name": "sgd", "momentum": 1.5}, {"lr": 0.1}),
                                     ({"name": "adam", "beta1": 1.0}, {"lr": 0.1}),
                                     ({"name": "sgd", "nesterov": True}, {"lr": 0.1}),
                                     ({"name": "adam", "eps_on": "m"}, {"lr": 0.1}),
                                     ({"name": "adam", "eps_on": None}, {"lr": 0.1})])
def test_bad_hyperparameters(spec, kw):
    with pytest.raises(ConfigError):
        get_optimizer(spec, [np.zeros(2)], **kw)


def test_schedules():
    assert get_schedule("constant")(7, 0.1) == 0.1
    step = get_schedule({"name": "step", "step_size": 2, "gamma": 0.5})
    assert [step(e, 1.0) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    inv = get_schedule({"name": "inverse_scaling", "power": 0.5})
    assert inv(3, 1.0) == pytest.approx(0.5)
    cos = get_schedule({"name": "cosine", "epochs": 10, "min_lr": 0.0})
    assert cos(0, 1.0) == pytest.approx(1.0) and cos(5, 1.0) == pytest.approx(0.5) and cos(10, 1.0) == pytest.approx(0.0)
    plateau = get_schedule({"name": "reduce_on_plateau", "factor": 0.5, "patience": 1})
    lrs = []
    for value in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]:
        lrs.append(plateau(0, 1.0))
        plateau.observe(value)
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    with pytest.raises(ConfigError, match="valid"):
        get_schedule("warp")
    assert math.isfinite(cos(20, 1.0))


LEGACY = [  # (optimizer, {current slot: (slot name in old files, factor from the plain sum to what they held)})
    ("adam", {"m_scaled": ("m_sum", 1.0), "v_scaled": ("v_sum", 1.0)}),
    ("adam", {"m_scaled": ("m", 1 - 0.9), "v_scaled": ("v", 1 - 0.999)}),
    ("rmsprop", {"square_scaled": ("square_sum", 1.0)}),
    ("rmsprop", {"square_scaled": ("square_avg", 1 - 0.99)}),
    ({"name": "sgd", "momentum": 0.9}, {"velocity_scaled": ("velocity", 1.0)}),
]


@pytest.mark.parametrize("name,legacy", LEGACY)
def test_state_written_under_the_old_slot_names_still_loads(name, legacy, sum_form):
    """Files written before the decayed sums were kept scaled hold the plain sums (``m_sum``,
    ``v_sum``, ``square_sum``, ``velocity``) and no scales; older ones still hold the averages
    (``m``, ``v``, ``square_avg``). Loading converts them and training continues the same."""
    p, gs = _setup()
    a = p.copy()
    opt = get_optimizer(name, [a], lr=0.01)
    opt.step([gs[0].copy()])
    meta, arrays = opt.state_dict()
    scales = meta.pop("scales")  # old files had no scales
    old = {}
    for key, value in arrays.items():
        slot, i = key.split("/")
        old_name, factor = legacy[slot]
        old[f"{old_name}/{i}"] = value * scales[slot][int(i)] * factor  # what the old code saved
    b = a.copy()
    opt2 = get_optimizer(name, [b], lr=0.01)
    opt2.load_state_dict(meta, old)
    for g in gs[1:]:
        opt.step([g.copy()])
        opt2.step([g.copy()])
    np.testing.assert_allclose(b, a, rtol=1e-12)


def test_missing_optimizer_state_is_a_config_error():
    opt = get_optimizer("adam", [np.zeros(3)], lr=0.01)
    meta, arrays = opt.state_dict()
    with pytest.raises(ConfigError, match="m_scaled/0 is missing"):
        get_optimizer("adam", [np.zeros(3)], lr=0.01).load_state_dict(meta, {})


def _reference(name, p, grads, lr, **hp):
    """The optimizers' formulas, step by step in float64 (PyTorch's conventions)."""
    ref, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g + hp.get("weight_decay", 0.0) * ref
        if name == "sgd":
            mu = hp.get("momentum", 0.0)
            m = mu * m + g
            ref = ref - lr * ((g + mu * m) if hp.get("nesterov") else m)
        elif name == "rmsprop":
            a = hp.get("alpha", 0.99)
            v = a * v + (1 - a) * g * g
            ref = ref - lr * g / (np.sqrt(v) + 1e-8)
        else:
            b1, b2 = hp.get("beta1", 0.9), hp.get("beta2", 0.999)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            eps = hp.get("eps", 1e-8)
            if hp.get("eps_on", "v_hat") == "v":  # scikit-learn's arrangement
                ref = ref - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
            else:
                ref = ref - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return ref


LONG_RUNS = [("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.5, "nesterov": True, "weight_decay": 0.01}),
             ("rmsprop", {"alpha": 0.9}), ("rmsprop", {"alpha": 0.0}), ("adam", {}),
             ("adam", {"beta1": 0.0, "beta2": 0.5, "weight_decay": 0.001}), ("adam", {"beta1": 0.5}),
             ("adam", {"eps_on": "v", "eps": 0.05}), ("adam", {"eps_on": "v", "beta2": 0.9, "eps": 0.5})]


@pytest.fixture(params=["scaled", "plain"])
def sum_form(request, monkeypatch):
    """Run a test with every parameter large (scaled sums, BLAS axpy) or small (plain sums)."""
    monkeypatch.setattr(Optimizer, "scaled_min_size", 1 if request.param == "scaled" else 10**12)
    return request.param


@pytest.mark.parametrize("name,hp", LONG_RUNS)
def test_long_runs_follow_the_formulas_through_the_rescaling_of_decayed_sums(name, hp, sum_form):
    """300 steps: the scaled decayed sums are folded back into their arrays several times
    (every ~105 steps for beta = 0.9, every 16 for 0.5) and beta = 0 keeps no history; the
    plain sums of small parameters follow the same formulas."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(5, 4))
    grads = [rng.normal(size=(5, 4)) for _ in range(300)]
    lr = 0.01
    np.testing.assert_allclose(_run({"name": name, **hp}, p, grads, lr=lr), _reference(name, p, grads, lr, **hp),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name,hp", LONG_RUNS)
def test_saved_state_with_its_scales_resumes_bit_for_bit(name, hp, sum_form):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(250)]
    opt = get_optimizer({"name": name, **hp}, [a], lr=0.01)
    for g in grads[:37]:
        opt.step([g.copy()])
    meta, arrays = opt.state_dict()
    meta = json.loads(json.dumps(meta))  # as a model file stores it
    b = a.copy()
    opt2 = get_optimizer({"name": name, **hp}, [b], lr=0.01)
    opt2.load_state_dict(meta, {k: v.copy() for k, v in arrays.items()})
    for g in grads[37:]:  # across later rescalings too
        opt.step([g.copy()])
        opt2.step([g.copy()])
    assert np.array_equal(a, b)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), "x", [1.0], [1.0, "x"], {"a": 1}, True])
def test_a_bad_saved_scale_is_a_config_error(bad, monkeypatch):
    monkeypatch.setattr(Optimizer, "scaled_min_size", 1)
    opt = get_optimizer("adam", [np.zeros(3), np.zeros(2)], lr=0.01)
    opt.step([np.ones(3), np.ones(2)])
    meta, arrays = opt.state_dict()
    meta["scales"]["m_scaled"] = bad
    with pytest.raises(ConfigError, match="scales? of m_scaled"):
        get_optimizer("adam", [np.zeros(3), np.zeros(2)], lr=0.01).load_state_dict(meta, arrays)


def test_large_and_small_parameters_together(monkeypatch):
    """A large weight matrix (scaled sums) beside a small bias (plain sums), as in a real layer;
    and a state saved with every sum scaled loads into small parameters (folded to plain sums)."""
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(200, 200)), rng.normal(size=7)
    grads = [(rng.normal(size=(200, 200)), rng.normal(size=7)) for _ in range(150)]
    got = [W.copy(), b.copy()]
    opt = get_optimizer("adam", got, lr=0.01)
    assert opt._large == [0]
    for gw, gb in grads:
        opt.step([gw.copy(), gb.copy()])
    np.testing.assert_allclose(got[0], _reference("adam", W, [g for g, _ in grads], 0.01), rtol=1e-9)
    np.testing.assert_allclose(got[1], _reference("adam", b, [g for _, g in grads], 0.01), rtol=1e-9)

    monkeypatch.setattr(Optimizer, "scaled_min_size", 1)
    a = [W.copy(), b.copy()]
    opt = get_optimizer("adam", a, lr=0.01)
    for gw, gb in grads[:50]:
        opt.step([gw.copy(), gb.copy()])
    meta, arrays = opt.state_dict()
    monkeypatch.setattr(Optimizer, "scaled_min_size", 10**12)
    c = [x.copy() for x in a]
    opt2 = get_optimizer("adam", c, lr=0.01)
    opt2.load_state_dict(meta, {k: v.copy() for k, v in arrays.items()})
    assert opt2.scales["m_scaled"] == [1.0, 1.0]
    for gw, gb in grads[50:]:
        opt.step([gw.copy(), gb.copy()])
        opt2.step([gw.copy(), gb.copy()])
    for x, y in zip(a, c):
        np.testing.assert_allclose(y, x, rtol=1e-9)


def test_flush_subnormals_zeroes_only_subnormal_values():
    from mlplab.optimizers import flush_subnormals, get_optimizer

    tiny = np.finfo(np.float32).tiny
    a = np.array([0.0, tiny, -tiny, tiny / 4, -tiny / 1000, 1e-30, -1.0, 3.0], dtype=np.float32)
    assert np.count_nonzero((a != 0) & (np.abs(a) < tiny)) == 2  # the two subnormals
    flush_subnormals(a)
    assert a.tolist() == np.array([0.0, tiny, -tiny, 0.0, 0.0, 1e-30, -1.0, 3.0], dtype=np.float32).tolist()
    # the optimizer's moments are flushed too, its scratch left alone
    p = np.ones((4, 3), np.float32)
    opt = get_optimizer("adam", [p])
    opt.state["m_scaled"][0][0, 0] = tiny / 8
    opt.state["v_scaled"][0][1, 1] = -tiny / 8
    opt.flush_subnormals()
    assert opt.state["m_scaled"][0][0, 0] == 0 and opt.state["v_scaled"][0][1, 1] == 0


def test_estimator_keeps_weights_out_of_the_subnormal_range():
    """Adam with L2 drives the weights of always-0 inputs down through the subnormal range; the
    estimator zeroes them every FLUSH_EVERY steps (they slow every step through microcode assists)."""
    from mlplab.estimator import FLUSH_EVERY, MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.random((400, 6), dtype=np.float32)
    X[:, :3] = 0  # inputs that are always 0: their weights only decay
    y = (X[:, 3] > X[:, 4]).astype(int)
    est = MLPClassifier(hidden_layer_sizes=(4,), alpha=1e-4, batch_size=20, max_iter=4, tol=0.0,
                        n_iter_no_change=100, random_state=0, warm_start=True)
    import warnings

    tiny = np.finfo(np.float32).tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        W = est.net_.parameters()[0]
        W[:3] = tiny / 8  # as the decay leaves them, and their moments, after many epochs
        est._optimizer.state["m_scaled"][0][:3] = 0
        est.fit(X, y)  # 4 more epochs of 20 steps: more than FLUSH_EVERY
    assert 4 * 20 > FLUSH_EVERY
    for p in est.net_.parameters():
        assert not np.any((p != 0) & (np.abs(p) < tiny))
    assert np.all(W[:3] == 0)  # flushed, and zero they stay
    assert est.score(X, y) > 0.8


@pytest.mark.parametrize("optimizer,flushes", [("adam", True), ({"name": "sgd", "momentum": 0.9}, True),
                                               ("sgd", False)])
def test_trainer_keeps_weights_out_of_the_subnormal_range(optimizer, flushes):
    """The Trainer flushes subnormal weights and optimizer state every FLUSH_EVERY optimizer steps
    when the optimizer keeps decayed state; plain SGD (its weights decay too slowly to get there,
    and the textbook recipe pays nothing) does not."""
    from mlplab.network import MLP
    from mlplab.training import FLUSH_EVERY, Trainer

    rng = np.random.default_rng(0)
    X = rng.random((400, 6), dtype=np.float32)
    X[:, :3] = 0  # inputs that are always 0: their weights get no data gradient
    y = (X[:, 3] > X[:, 4]).astype(int)
    net = MLP([6, 4, 2], "relu", "softmax", "cross_entropy", init="glorot", dtype="float32", seed=0)
    tr = Trainer(net, optimizer, lr=0.01, batch_size=20)
    tr.fit(X, y, 1)
    tiny = np.finfo(np.float32).tiny
    W = net.parameters()[0]
    W[:3] = tiny / 8  # as a long decay leaves them
    tr.fit(X, y, 5)  # 4 more epochs of 20 steps: a step count divisible by FLUSH_EVERY passes
    assert 4 * 20 > FLUSH_EVERY
    assert np.all(W[:3] == 0) == flushes
    if flushes:
        for p in net.parameters():
            assert not np.any((p != 0) & (np.abs(p) < tiny))
        for slot, arrays in tr.optimizer.state.items():
            if slot not in tr.optimizer.scratch_slots:
                for a in arrays:
                    assert not np.any((a != 0) & (np.abs(a) < tiny)), slot


def test_trainer_flushes_at_the_same_steps_after_a_resume():
    """The flush follows the optimizer's step count, which checkpoints keep: an interrupted and
    resumed run equals the uninterrupted one bit for bit, flushes included."""
    from mlplab.network import MLP
    from mlplab.training import LambdaCallback, Trainer

    rng = np.random.default_rng(1)
    X = rng.random((300, 6), dtype=np.float32)
    X[:, :2] = 0
    y = (X[:, 3] > X[:, 4]).astype(int)

    def make():
        net = MLP([6, 4, 2], "relu", "softmax", "cross_entropy", init="glorot", dtype="float32", seed=0)
        net.parameters()[0][:2] = np.finfo(np.float32).tiny / 8
        return Trainer(net, {"name": "adam", "weight_decay": 1e-3}, lr=0.01, batch_size=25)

    ref = make()
    ref.fit(X, y, 12)
    a = make()
    a.fit(X, y, 5)
    meta, arrays = a.state_dict()
    b = make()
    b.net.set_weights(a.net.get_weights())
    b.load_state_dict(meta, arrays)
    b.fit(X, y, 12)
    for p, q in zip(b.net.parameters(), ref.net.parameters()):
        assert np.array_equal(p, q)
