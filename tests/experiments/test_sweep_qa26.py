"""QA7 audit fixes in the experiment engine: faithful cell names and groups, diverged cells,
a dead pool worker, orphan workers, huge sweeps, 1 vs 1.0, --seeds into a folder, settings
that cannot take effect."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from mlplab.errors import ConfigError
from mlplab.experiments import sweep
from mlplab.experiments.runner import plan, run_experiment
from mlplab.experiments.spec import load_spec
from mlplab.experiments.sweep import CELL_FILE, CellFailed, run_cells

BASE = """
name = "q"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[preprocessing]
scaling = "unit"
[model]
hidden = [8]
hidden_activation = "relu"
init = "he"
[training]
optimizer = "sgd"
lr = 0.1
batch_size = 64
epochs = 1
seed = 5
"""


def _spec(tmp_path, extra, name="s.toml"):
    p = tmp_path / name
    p.write_text(BASE + textwrap.dedent(extra))
    return p


# ----------------------------------------------------------------------------- 1: names and groups


def test_table_and_near_equal_float_axes_give_distinct_names_and_one_group_each(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(BASE.replace('init = "he"', 'init = "normal"') + textwrap.dedent("""
        [sweep]
        "model.init_params" = [{ std = 0.01 }, { std = 1.0 }]
        "training.lr" = [0.1, 0.1000001]
        """))
    summary = run_experiment(load_spec(p), tmp_path / "r")
    names = [c["name"] for c in summary["cells"]]
    assert len(set(names)) == 4
    assert "init_params={std=0.01},lr=0.1000001" in names and "init_params={std=1},lr=0.1" in names
    assert len(summary["groups"]) == 4
    assert all(g["n_seeds"] == 1 for g in summary["groups"].values())


def test_groups_follow_the_config_without_seed_not_the_name():
    """Two configurations whose cells happen to share a display name are never averaged."""
    a = sweep.Cell(name="same", kind="generic:run_cell", config={"training": {"lr": 0.1, "seed": 0}})
    b = sweep.Cell(name="same", kind="generic:run_cell", config={"training": {"lr": 0.2, "seed": 0}})
    cells = sweep.with_seeds([a, b], 2, "training.seed")
    results = [sweep.CellResult(c, Path("."), {"test_accuracy": 0.5 + i / 10}, False, 0.0) for i, c in enumerate(cells)]
    groups = sweep.aggregate(results)
    assert len(groups) == 2 and all(g["n_seeds"] == 2 for g in groups.values())


# ----------------------------------------------------------------------------- 2: diverged cells


def test_diverged_cells_are_recorded_cached_and_the_rest_run(tmp_path):
    p = _spec(tmp_path, """
        [sweep]
        "training.lr" = [0.05, 1e20]
        "training.optimizer" = ["sgd", "adam"]
        """)
    out = tmp_path / "r"
    summary = run_experiment(load_spec(p), out)
    status = {c["name"]: c["status"] for c in summary["cells"]}
    assert status == {"lr=0.05,optimizer=sgd": "finished", "lr=1e+20,optimizer=sgd": "diverged",
                      "lr=0.05,optimizer=adam": "finished", "lr=1e+20,optimizer=adam": "diverged"}
    assert sorted(summary["diverged"]) == ["lr=1e+20,optimizer=adam", "lr=1e+20,optimizer=sgd"]
    for c in summary["cells"]:
        saved = json.loads((out / c["folder"] / CELL_FILE).read_text())
        if c["status"] == "diverged":
            assert saved["status"] == "diverged" and "DivergenceError" in saved["result"]["error"]
        else:
            assert 0.0 < c["result"]["test_accuracy"] <= 1.0
    report = (out / "report.md").read_text()
    assert "diverged" in report and "n/a" in report
    again = run_experiment(load_spec(p), out)
    assert all(c["cached"] for c in again["cells"])
    assert sorted(again["diverged"]) == sorted(summary["diverged"])


# ----------------------------------------------------------------------------- 3: a dead pool worker


class _DeadPool:
    """A process pool whose workers die: the first job starts (its folder is emptied), then every
    future fails with BrokenProcessPool."""

    def __init__(self, *args, **kwargs):
        self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, job):
        if not self.started:
            self.started = True
            sweep._fresh_folder(Path(job[1][2]))
        fut = Future()
        fut.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
        return fut


def test_dead_pool_worker_gives_one_line_naming_the_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "ProcessPoolExecutor", _DeadPool)
    cells = [sweep.Cell(name=f"c{i}", kind="generic:run_cell", config={"i": i}) for i in range(3)]
    with pytest.raises(CellFailed) as info:
        run_cells(cells, tmp_path / "cells", jobs=2)
    msg = str(info.value)
    assert "\n" not in msg and "worker process died" in msg and "'c0'" in msg and "'c1'" not in msg
    assert "0 of 3 cells" in msg and "run the same command again" in msg and "--resume" in msg


# ----------------------------------------------------------------------------- 4: orphan workers


def _children(pid):
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="needs /proc/PID/task/PID/children")
def test_pool_workers_end_when_the_main_process_is_killed(tmp_path):
    p = _spec(tmp_path, """
        [sweep]
        "training.epochs" = [400, 401]
        "training.optimizer" = ["adam"]
        """)
    script = (f"from mlplab.experiments.runner import run_experiment\nfrom mlplab.experiments.spec import load_spec\n"
              f"run_experiment(load_spec({str(p)!r}), {str(tmp_path / 'r')!r}, jobs=2)\n")
    main = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        deadline, workers = time.time() + 60, []
        while time.time() < deadline:  # both workers started a cell
            started = list((tmp_path / "r" / "cells").glob("*")) if (tmp_path / "r" / "cells").is_dir() else []
            workers = [c for c in _children(main.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
            if len(started) == 2 and len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the workers did not start"
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        left = [w for w in workers if _alive(w)]
        for w in left:
            os.kill(w, signal.SIGKILL)
        assert not left, "pool workers outlived the killed main process"
    finally:
        if main.poll() is None:
            main.kill()


# ----------------------------------------------------------------------------- 6: huge sweeps


def test_huge_sweep_is_refused_before_cells_are_built(tmp_path, monkeypatch):
    p = _spec(tmp_path, """
        [sweep]
        "training.lr" = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]
        "training.seed" = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        "training.epochs" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        "training.batch_size" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        "model.dropout" = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        "split.seed" = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        """)
    monkeypatch.setattr(sweep, "grid", lambda axes: pytest.fail("cells were built"))
    with pytest.raises(ConfigError) as info:
        plan(load_spec(p))
    msg = str(info.value)
    assert str(p) in msg and "1,000,000 cells" in msg and "MLPLAB_MAX_CELLS" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="2,000,000 cells"):
        plan(load_spec(p), seeds=2)


def test_max_cells_override(tmp_path, monkeypatch):
    p = _spec(tmp_path, """
        [sweep]
        "training.lr" = [0.01, 0.02, 0.03]
        """)
    monkeypatch.setenv("MLPLAB_MAX_CELLS", "2")
    with pytest.raises(ConfigError, match="3 cells"):
        plan(load_spec(p))
    monkeypatch.setenv("MLPLAB_MAX_CELLS", "3")
    assert len(plan(load_spec(p))) == 3


# ----------------------------------------------------------------------------- 7: 1 and 1.0


def test_int_and_float_sweep_values_make_one_cache_key(tmp_path):
    a = _spec(tmp_path, '[sweep]\n"training.lr" = [1, 0.5]\n', "a.toml")
    b = _spec(tmp_path, '[sweep]\n"training.lr" = [1.0, 0.5]\n', "b.toml")
    assert [c.key for c in plan(load_spec(a))] == [c.key for c in plan(load_spec(b))]
    assert load_spec(a).sweep["training.lr"][0] == 1.0 and isinstance(load_spec(a).sweep["training.lr"][0], float)


# ----------------------------------------------------------------------------- 8: --seeds into a folder


def test_other_seeds_into_a_folder_say_so(tmp_path):
    p = _spec(tmp_path, "")
    out = tmp_path / "r"
    run_experiment(load_spec(p), out, seeds=2)
    events = []
    summary = run_experiment(load_spec(p), out, seeds=1, progress=events.append)
    notes = [e["message"] for e in events if e.get("event") == "warning"]
    assert len(notes) == 1 and "--seeds 2" in notes[0] and "--seeds 1" in notes[0]
    assert summary["seeds"] == 1 and all(c["cached"] for c in summary["cells"])
    events.clear()
    run_experiment(load_spec(p), out, seeds=1, progress=events.append)
    assert not [e for e in events if e.get("event") == "warning"]


# ----------------------------------------------------------------------------- 9: settings without effect


@pytest.mark.parametrize("extra, key", [
    ("[training]\nrecord_epochs = [5]\n", "training.record_epochs 5"),
    ("[data]\nmax_train_samples = 100000\n", "data.max_train_samples 100000"),
    ("[data]\nmax_test_samples = 100000\n", "data.max_test_samples 100000"),
])
def test_settings_that_cannot_take_effect_are_refused(tmp_path, extra, key):
    raw = BASE.replace("[training]\n", "[training]\n" + extra.split("\n", 1)[1], 1) \
        if extra.startswith("[training]") else BASE.replace("[data]\n", "[data]\n" + extra.split("\n", 1)[1], 1)
    p = tmp_path / "bad.toml"
    p.write_text(raw)
    out = tmp_path / "r"
    with pytest.raises(ConfigError) as info:
        run_experiment(load_spec(p), out)
    msg = str(info.value)
    assert str(p) in msg and key in msg and "\n" not in msg
    assert not out.exists()
