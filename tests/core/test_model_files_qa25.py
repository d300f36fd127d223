"""QA round 25 (model files): bad metadata, non-regular files, bad checkpoint trainer state and
weights that overflow the network's dtype are refused with one ModelFileError naming the file."""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import sys

import numpy as np
import pytest

from mlplab.errors import ModelFileError
from mlplab.network import MLP
from mlplab.serialization import load_model, restore_trainer, save_model
from mlplab.training import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _read(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    return meta, arrays


def _write(path, meta=None, arrays=None, *, meta_bytes: bytes | None = None):
    if meta_bytes is None:
        meta_bytes = json.dumps(meta).encode()  # allow_nan: writes NaN/Infinity literals
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(meta_bytes, dtype=np.uint8), **arrays)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny float32 network after 2 epochs, saved with its trainer state."""
    rng = np.random.default_rng(0)
    X, y = rng.random((24, 3)).astype(np.float32), rng.integers(0, 2, 24)
    net = MLP([3, 4, 2], seed=0, dtype="float32")
    tr = Trainer(net, "adam", lr=0.01, batch_size=8, seed=0)
    tr.fit(X, y, 2)
    path = tmp_path_factory.mktemp("qa25") / "model.npz"
    save_model(path, net, trainer=tr)
    return path, _read(path)


def _mutated(tmp_path, trained, mutate, name="bad.npz"):
    meta, arrays = copy.deepcopy(trained[1][0]), dict(trained[1][1])
    mutate(meta, arrays)
    return _write(tmp_path / name, meta, arrays)


def _one_line_error(path, fn=load_model):
    with pytest.raises(ModelFileError) as ei:
        fn(path)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg
    return msg


@pytest.mark.parametrize("const", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["seed", "sizes"])
def test_nan_infinity_literals_in_metadata_refused(tmp_path, trained, const, where):
    def mutate(m, a):
        if where == "seed":
            m["network"]["seed"] = const
        else:
            m["network"]["sizes"][0] = const
    msg = _one_line_error(_mutated(tmp_path, trained, mutate))
    assert "not allowed" in msg


def test_deeply_nested_metadata_refused(tmp_path, trained):
    path = _write(tmp_path / "deep.npz", arrays=trained[1][1], meta_bytes=b"[" * 100_000 + b"]" * 100_000)
    assert "nested too deeply" in _one_line_error(path)


@pytest.mark.parametrize("nf", [3.7, True, 0, "3"])
def test_scaler_n_features_must_be_positive_integer(tmp_path, trained, nf):
    def mutate(m, a):
        m["preprocessing"] = {"scaler": {"kind": "unit", "n_features": nf}}
    assert "n_features" in _one_line_error(_mutated(tmp_path, trained, mutate))


def test_format_version_bool_refused(tmp_path, trained):
    assert "format_version" in _one_line_error(
        _mutated(tmp_path, trained, lambda m, a: m.__setitem__("format_version", True)))


def test_stray_parameter_array_refused(tmp_path, trained):
    path = _mutated(tmp_path, trained, lambda m, a: a.__setitem__("param/99", np.zeros(2)))
    assert "param/99" in _one_line_error(path)


def test_weights_overflowing_network_dtype_refused(tmp_path, trained):
    def mutate(m, a):
        a["param/0"] = np.full(a["param/0"].shape, 1e300)  # finite float64, inf as float32
    assert "too large" in _one_line_error(_mutated(tmp_path, trained, mutate))


@pytest.mark.skipif(not hasattr(os, "mkfifo") or sys.platform == "win32", reason="needs FIFOs and SIGALRM")
def test_fifo_model_file_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)

    def hung(*_):
        raise TimeoutError("load_model blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        assert "not a regular file" in _one_line_error(fifo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _set(path, value):
    def mutate(m, a):
        d = m["trainer"]
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return mutate


@pytest.mark.parametrize("mutate", [
    _set(("epochs_done",), -3),
    _set(("epochs_done",), 2.5),
    _set(("epochs_done",), 5),                       # history has 2 rows
    _set(("base_lr",), "x"),
    _set(("shuffle_rng", "state", "state"), 2**200),  # OverflowError in NumPy's setter
    _set(("shuffle_rng", "state", "state"), -1),
    _set(("history",), [1]),                          # AttributeError in History.from_dict
    _set(("history", "loss"), [1.0]),                 # ragged: IndexError when history.csv is written
    _set(("history", "epoch"), [1, -1]),
    _set(("optimizer", "t"), -1),
    _set(("resume",), [1]),
    _set(("resume",), {"full_batch": True, "batch": -1, "loss_sum": 0.0, "correct": 0, "seen": 0,
                       "elapsed": 0.0}),
    _set(("callbacks",), [1]),
], ids=["epochs-neg", "epochs-float", "epochs-vs-history", "base-lr-str", "rng-huge", "rng-neg",
        "history-list", "history-ragged", "history-epochs", "opt-t-neg", "resume-list", "resume-batch-neg",
        "callbacks-list"])
def test_bad_checkpoint_trainer_state_refused_before_training(tmp_path, trained, mutate):
    path = _mutated(tmp_path, trained, mutate)
    saved = load_model(path)
    net = MLP([3, 4, 2], seed=1, dtype="float32")
    tr = Trainer(net, "adam", lr=0.01, batch_size=8, seed=0)
    before = tr.state_dict()[0]
    with pytest.raises(ModelFileError) as ei:
        restore_trainer(saved, tr)
    assert str(path) in str(ei.value) and "\n" not in str(ei.value)
    assert tr.epochs_done == 0 and len(tr.history) == 0 and tr.state_dict()[0]["shuffle_rng"] == before["shuffle_rng"]


def test_good_checkpoint_trainer_state_still_restores(trained):
    saved = load_model(trained[0])
    tr = Trainer(MLP([3, 4, 2], seed=1, dtype="float32"), "adam", lr=0.01, batch_size=8, seed=0)
    restore_trainer(saved, tr)
    assert tr.epochs_done == 2 and len(tr.history) == 2


def test_cli_resume_with_bad_trainer_state_exits_2_one_line(tmp_path, capsys):
    from mlplab.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--hidden", "4", "--epochs", "1", "--threads", "1", "--quiet",
                 "--no-report", "--out", str(out)]) == 0
    meta, arrays = _read(out / "model.npz")
    meta["trainer"]["history"]["loss"] = []
    _write(out / "checkpoint.npz", meta, arrays)
    (out / "model.npz").unlink()
    cfg = out / "config.toml"
    cfg.write_text(cfg.read_text().replace("epochs = 1", "epochs = 2"))
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.npz" in err[0] and "history" in err[0]


# -- the estimator loaders -------------------------------------------------------------------

@pytest.fixture(scope="module")
def est_file(tmp_path_factory):
    from mlplab.estimator import MLPClassifier

    rng = np.random.default_rng(0)
    X, y = rng.random((30, 3)), rng.integers(0, 3, 30)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, y)
    path = tmp_path_factory.mktemp("qa25est") / "est.npz"
    est.save(path)
    return path, _read(path)


@pytest.mark.parametrize("key,value", [
    ("shuffle_rng", 2**200), ("shuffle_rng", -1), ("n_samples_seen", float("inf")), ("seed", float("nan"))])
def test_estimator_load_bad_training_fields_refused(tmp_path, est_file, key, value):
    from mlplab.estimator import MLPClassifier

    meta, arrays = copy.deepcopy(est_file[1][0]), dict(est_file[1][1])
    if key == "shuffle_rng":
        meta["training"]["shuffle_rng"]["state"]["state"] = value
    else:
        meta["training"][key] = value
    path = _write(tmp_path / "e.npz", meta, arrays)
    _one_line_error(path, MLPClassifier.load)


@pytest.mark.parametrize("edit,fragment", [
    ("hidden", "hidden_layer_sizes must be > 0, got (0,)"),
    ("feature_names", "feature names for 3 features"),
    ("nan_moment", "holds NaN or infinite values"),
    ("negative_t", "t must be a non-negative integer"),
])
def test_estimator_load_checks_settings_and_state_against_the_network(tmp_path, est_file, edit, fragment):
    """The saved settings must be valid (they may differ from the network's, as after a set_params
    since the fit: a warm fit refuses that, as in memory), and the optimizer state must be usable."""
    from mlplab.estimator import MLPClassifier

    meta, arrays = copy.deepcopy(est_file[1][0]), dict(est_file[1][1])
    if edit == "hidden":
        meta["training"]["params"]["hidden_layer_sizes"] = [0]
    elif edit == "feature_names":
        meta["training"]["feature_names_in"] = ["a", "b"]
    elif edit == "nan_moment":
        bad = arrays["extra/optimizer/m_scaled/0"].copy()
        bad[0, 0] = np.nan
        arrays["extra/optimizer/m_scaled/0"] = bad
    else:
        meta["training"]["optimizer"]["t"] = -3
    path = _write(tmp_path / "e.npz", meta, arrays)
    assert fragment in _one_line_error(path, MLPClassifier.load)


@pytest.mark.parametrize("edit,fragment", [
    ("scores_text", "validation_scores is not a list"),
    ("scores_items", "could not convert string to float"),
    ("scores_alone", "validation_scores and validation_loss_curve do not match"),
    ("lengths", "validation_scores and validation_loss_curve do not match"),
    ("count", "no_improvement_count is -2"),
])
def test_estimator_load_checks_the_saved_validation_record(tmp_path, est_file, edit, fragment):
    """The early-stopping record a warm fit continues is checked on load (it was taken as
    written: a string loaded, then the next warm fit failed with a traceback)."""
    from mlplab.estimator import MLPClassifier

    meta, arrays = copy.deepcopy(est_file[1][0]), dict(est_file[1][1])
    t = meta["training"]
    if edit == "scores_text":
        t["validation_scores"], t["validation_loss_curve"] = "0.9", "0.3"
    elif edit == "scores_items":
        t["validation_scores"], t["validation_loss_curve"] = ["high"], [0.3]
    elif edit == "scores_alone":
        t["validation_scores"], t["validation_loss_curve"] = [0.9], None
    elif edit == "lengths":
        t["validation_scores"], t["validation_loss_curve"] = [0.9, 0.8], [0.3]
    else:
        t["no_improvement_count"] = -2
    path = _write(tmp_path / "e.npz", meta, arrays)
    assert fragment in _one_line_error(path, MLPClassifier.load)


def test_estimator_load_keeps_a_valid_validation_record(tmp_path):
    from mlplab.estimator import MLPClassifier

    rng = np.random.default_rng(1)
    X, y = rng.random((60, 3)), rng.integers(0, 2, 60)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, early_stopping=True,
                        n_iter_no_change=10, random_state=0).fit(X, y)
    back = MLPClassifier.load(est.save(tmp_path / "e.npz"))
    assert back.validation_scores_ == est.validation_scores_
    assert back.validation_loss_curve_ == est.validation_loss_curve_
    assert back.best_validation_score_ == est.best_validation_score_
