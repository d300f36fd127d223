"""Interrupting a real `mlplab train` process: SIGINT/SIGTERM checkpoint and resume exactly;
SIGKILL never leaves a partial file."""

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

TRAIN = ["train", "--dataset", "digits", "--hidden", "256", "--hidden-activation", "relu", "--init", "he",
         "--optimizer", "adam", "--lr", "0.001", "--batch-size", "8", "--epochs", "120", "--seed", "5",
         "--quiet", "--no-report"]


def _cmd(*args):
    return [sys.executable, "-c", "import sys; from mlplab.cli import main; sys.exit(main(sys.argv[1:]))", *args]


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
    out = tmp_path / "run"
    # checkpoint every epoch so the kill lands among writes
    cfg = tmp_path / "c.toml"
    cfg.write_text("[training]\ncheckpoint_seconds = 0.001\n")
    for delay in (0.3, 0.9, 1.5):
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
        # a later run in the same folder resumes from the last good checkpoint
        if (out / "checkpoint.npz").exists():
            saved = load_model(out / "checkpoint.npz")
            assert saved.trainer_state["epochs_done"] >= 1
    done = subprocess.run(_cmd("train", "--resume", str(out), "--quiet", "--no-report"), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list(out.glob(".*.tmp"))
