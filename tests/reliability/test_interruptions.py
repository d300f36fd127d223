"""Interrupting a real `mlplab train` process: SIGINT/SIGTERM checkpoint and resume exactly;
SIGKILL never leaves a partial file.

Marked slow (about 4 minutes in all: real processes train and are signalled): ``make test`` leaves
them out, ``make test-slow`` and CI run them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlplab.serialization import load_model
from mlplab.training import History

pytestmark = pytest.mark.slow

TRAIN = ["train", "--dataset", "digits", "--hidden", "256", "--hidden-activation", "relu", "--init", "he",
         "--optimizer", "adam", "--lr", "0.001", "--batch-size", "8", "--epochs", "120", "--seed", "5",
         "--quiet", "--no-report"]


def _cmd(*args):
    return [sys.executable, "-c", "import sys; from mlplab.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def _default_sigint():
    """In the child before exec: Ctrl-C does what it does in a terminal, even when this test runs
    where SIGINT is ignored (a shell's background job): a process that inherits SIG_IGN keeps
    ignoring SIGINT, as POSIX wants, and Python then installs no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env():
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _params(path):
    return [p.copy() for p in load_model(path).net.parameters()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(_cmd(*TRAIN, "--out", str(out)), check=True, env=_env(), timeout=300)
    return out


def _wait_for_training(proc, out: Path, after: float = 0.0, extra: float = 0.5, timeout: float = 180.0):
    """Block until the run has written config.toml (training starts right after), then ``extra`` s."""
    deadline = time.monotonic() + timeout
    cfg = out / "config.toml"
    while not (cfg.exists() and cfg.stat().st_mtime >= after):
        assert proc.poll() is None, "the process ended before training started"
        assert time.monotonic() < deadline, "training did not start in time"
        time.sleep(0.05)
    time.sleep(extra)
    assert proc.poll() is None, "training finished before it could be interrupted; make it longer"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_is_bit_identical(tmp_path, reference, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(*TRAIN, "--out", str(out)), env=_env(), stderr=subprocess.PIPE, text=True)
    _wait_for_training(proc, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert (out / "checkpoint.npz").exists() and not (out / "metrics.json").exists()
    done = subprocess.run(_cmd("train", "--resume", str(out), "--quiet", "--no-report"), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not (out / "checkpoint.npz").exists()
    for a, b in zip(_params(out / "model.npz"), _params(reference / "model.npz")):
        assert np.array_equal(a, b)
    ours = json.loads((out / "metrics.json").read_text())["test"]
    ref = json.loads((reference / "metrics.json").read_text())["test"]
    assert ours["accuracy"] == ref["accuracy"] and ours["log_loss"] == ref["log_loss"]


def test_sigkill_leaves_no_partial_file(tmp_path):
    # checkpoint every epoch so the kill lands among writes
    cfg = tmp_path / "c.toml"
    cfg.write_text("[training]\ncheckpoint_seconds = 0.001\n")
    resumable = []
    for i, delay in enumerate((0.3, 0.9, 1.5)):
        out = tmp_path / f"run{i}"  # a new run may not overwrite a killed one's folder
        started = time.time() - 1.0  # coarse file-system timestamps
        proc = subprocess.Popen(_cmd(*TRAIN, "-c", str(cfg), "--out", str(out)), env=_env(),
                                stderr=subprocess.DEVNULL)
        _wait_for_training(proc, out, after=started, extra=delay)
        proc.kill()
        proc.wait(timeout=30)
        for f in out.iterdir():
            if f.name.startswith("."):
                continue  # temporaries of the killed write: never read, removed by the next run
            if f.suffix == ".npz":
                load_model(f)  # complete and valid
            elif f.suffix in (".json",):
                json.loads(f.read_text())
            elif f.suffix in (".toml", ".csv"):
                assert f.read_text().endswith("\n")
        if (out / "checkpoint.npz").exists():
            saved = load_model(out / "checkpoint.npz")
            assert saved.trainer_state["epochs_done"] >= 1
            resumable.append(out)
    # a later run in the same folder resumes from the last good checkpoint
    assert resumable
    out = resumable[-1]
    done = subprocess.run(_cmd("train", "--resume", str(out), "--quiet", "--no-report"), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list(out.glob(".*.tmp"))


SWEEP = """
name = "sweep"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[preprocessing]
scaling = "unit"
dtype = "float32"
[model]
hidden = [64]
hidden_activation = "relu"
[training]
optimizer = "sgd"
optimizer_params = { momentum = 0.9 }
lr = 0.1
batch_size = 8
epochs = 40
seed = 7
[sweep]
"training.lr" = [0.02, 0.05, 0.1, 0.2]
"""


def _cells_done(out: Path) -> int:
    return len(list((out / "cells").glob("*/cell.json"))) if (out / "cells").exists() else 0


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    spec = root / "sweep.toml"
    spec.write_text(SWEEP)
    ref = root / "ref"
    subprocess.run(_cmd("experiment", "run", str(spec), "--out", str(ref), "--jobs", "2"), check=True, env=_env(),
                   timeout=600, capture_output=True)
    return spec, ref


@pytest.mark.parametrize("how", ["ctrl-c to the process group", "SIGTERM to the parent"])
def test_experiment_run_interrupted_then_resumed(tmp_path, sweep_reference, how):
    """Finished cells stay cached, running workers are stopped at once, the rerun completes the
    sweep with exactly the results of an uninterrupted one."""
    spec, ref = sweep_reference
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd("experiment", "run", str(spec), "--out", str(out), "--jobs", "2"), env=_env(),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    deadline = time.monotonic() + 300
    while _cells_done(out) < 1:  # interrupt once some cells are finished and others are running
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it was interrupted"
        time.sleep(0.05)
    if how.startswith("ctrl-c"):
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err and "Traceback" not in err
    finished = _cells_done(out)
    assert 1 <= finished < 4
    # the same command again, or --resume with the folder alone
    again = ["experiment", "run", str(spec), "--out", str(out)] if how.startswith("ctrl-c") else \
        ["experiment", "run", "--resume", str(out)]
    done = subprocess.run(_cmd(*again, "--jobs", "2"), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert sum(c["cached"] for c in summary["cells"]) == finished
    reference = json.loads((ref / "summary.json").read_text())
    assert [c["result"]["test_accuracy"] for c in summary["cells"]] == \
        [c["result"]["test_accuracy"] for c in reference["cells"]]
    for c, r in zip(summary["cells"], reference["cells"]):
        for a, b in zip(_params(out / c["folder"] / "model.npz"), _params(ref / r["folder"] / "model.npz")):
            assert np.array_equal(a, b)


STACKED = """
name = "stacked"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[preprocessing]
scaling = "unit"
dtype = "float32"
[model]
hidden = [256]
hidden_activation = "relu"
[training]
optimizer = "sgd"
lr = 0.1
batch_size = 0
epochs = 2000
record_epochs = [100, 1000, 2000]
cost_every = 50
seed = 7
[sweep]
"training.lr" = [0.05, 0.2]
"""


@pytest.fixture(scope="module")
def stacked_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("stacked")
    spec = root / "stacked.toml"
    spec.write_text(STACKED)
    ref = root / "ref"
    subprocess.run(_cmd("experiment", "run", str(spec), "--out", str(ref), "--jobs", "2"), check=True, env=_env(),
                   timeout=600, capture_output=True)
    return spec, ref


@pytest.mark.parametrize("periodic,jobs", [(False, "2"), (True, "2"), (False, "1")],
                         ids=["checkpoint-on-signal", "periodic-checkpoints", "serial-checkpoint-on-signal"])
def test_interrupted_cell_continues_from_its_checkpoint(tmp_path, stacked_reference, periodic, jobs):
    """SIGTERM while a long stacked cell trains: it stops after the current epoch and
    checkpoints there (or, with frequent periodic checkpoints, they are there already); the
    rerun continues both models from the checkpoint (their first epochs' times are the first
    attempt's) and ends with the weights and snapshots of an uninterrupted run, bit for bit."""
    spec, ref = stacked_reference
    out = tmp_path / "out"
    env = dict(_env(), MLPLAB_CELL_CHECKPOINT_S="0.5" if periodic else "3600")
    proc = subprocess.Popen(_cmd("experiment", "run", str(spec), "--out", str(out), "--jobs", jobs), env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 300
    if periodic:
        while len(list(out.glob("cells/*/checkpoint.npz"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it checkpointed"
            time.sleep(0.05)
    else:
        while len(list(out.glob("cells/*/"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it started"
            time.sleep(0.05)
        time.sleep(4.0)  # data loaded, training under way
        assert not list(out.glob("cells/*/checkpoint.npz"))
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert _cells_done(out) == 0
    saved = {}
    for ck in out.glob("cells/*/checkpoint.npz"):
        state = load_model(ck).trainer_state
        assert 1 <= state["epochs_done"] < 2000
        saved[ck.parent.name] = state
    assert len(saved) == 2
    epochs = {s["epochs_done"] for s in saved.values()}
    assert len(epochs) == 1  # the stack checkpoints all its models at the same epoch
    done = subprocess.run(_cmd("experiment", "run", str(spec), "--out", str(out), "--jobs", "2"), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    reference = json.loads((ref / "summary.json").read_text())
    for c, r in zip(summary["cells"], reference["cells"]):
        assert c["result"]["stacked_with"] == 2
        assert c["result"]["snapshots"] == r["result"]["snapshots"]
        for a, b in zip(_params(out / c["folder"] / "model.npz"), _params(ref / r["folder"] / "model.npz")):
            assert np.array_equal(a, b)
        folder = out / c["folder"]
        assert not (folder / "checkpoint.npz").exists()
        # the first epochs (their wall times included) are the first attempt's, from the checkpoint
        before = History.from_dict(saved[folder.name]["history"]).to_csv().splitlines()
        after = (folder / "history.csv").read_text().splitlines()
        assert len(before) == saved[folder.name]["epochs_done"] + 1 and len(after) == 2001
        assert after[: len(before)] == before
