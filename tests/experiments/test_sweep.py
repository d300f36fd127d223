"""Sweep machinery on the offline digits dataset: cache, resume, serial == parallel, seeds."""

import json
import os

import numpy as np

from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec
from mlplab.experiments.sweep import CELL_FILE, config_hash


def _params(folder):
    from mlplab.serialization import load_model

    return [np.asarray(p) for p in load_model(folder / "model.npz").net.parameters()]


def test_sweep_writes_cells_summary_and_report(tiny_spec, tmp_path):
    out = tmp_path / "out"
    summary = run_experiment(load_spec(tiny_spec), out, jobs=1)
    assert len(summary["cells"]) == 4
    for c in summary["cells"]:
        folder = out / c["folder"]
        for f in ("config.toml", "history.csv", "metrics.json", "model.npz", "environment.json",
                  "predictions.npz", "report.md", "report.html", CELL_FILE):
            assert (folder / f).exists(), f
        assert set(c["result"]["snapshots"]) == {"1", "3"}
    saved = json.loads((out / "summary.json").read_text())
    assert saved["comparison"]["header"][1] == "published"
    md = (out / "report.md").read_text()
    assert md.index("Published vs reproduced vs corrected") < md.index("| cell")
    html = (out / "report.html").read_text()
    assert "<table>" in html and "src=\"figures" not in html  # self-contained


def test_cache_and_resume(tiny_spec, tmp_path):
    out = tmp_path / "out"
    first = run_experiment(load_spec(tiny_spec), out)
    assert not any(c["cached"] for c in first["cells"])
    stamps = {c["folder"]: os.stat(out / c["folder"] / CELL_FILE).st_mtime_ns for c in first["cells"]}
    second = run_experiment(load_spec(tiny_spec), out)
    assert all(c["cached"] for c in second["cells"])
    assert stamps == {c["folder"]: os.stat(out / c["folder"] / CELL_FILE).st_mtime_ns for c in second["cells"]}
    # an interrupted sweep: one cell never finished (no cell.json, half-written files)
    victim = out / first["cells"][2]["folder"]
    (victim / CELL_FILE).unlink()
    (victim / "metrics.json").write_text("{garbage")
    third = run_experiment(load_spec(tiny_spec), out)
    assert [c["cached"] for c in third["cells"]] == [True, True, False, True]
    assert third["cells"][2]["result"]["test_accuracy"] == first["cells"][2]["result"]["test_accuracy"]


def test_cache_key_changes_with_config_not_with_order():
    a = {"training": {"lr": 0.1, "epochs": 3}, "model": {"hidden": [8]}}
    b = {"model": {"hidden": [8]}, "training": {"epochs": 3, "lr": 0.1}}
    assert config_hash("k", a) == config_hash("k", b)
    assert config_hash("k", a) != config_hash("k", {**a, "training": {"lr": 0.2, "epochs": 3}})


def test_serial_and_parallel_bit_identical(tiny_spec, tmp_path):
    s = run_experiment(load_spec(tiny_spec), tmp_path / "serial", jobs=1)
    p = run_experiment(load_spec(tiny_spec), tmp_path / "parallel", jobs=2)
    assert [c["key"] for c in s["cells"]] == [c["key"] for c in p["cells"]]
    for cs, cp in zip(s["cells"], p["cells"]):
        assert not cp["cached"]
        for a, b in zip(_params(tmp_path / "serial" / cs["folder"]), _params(tmp_path / "parallel" / cp["folder"])):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert cs["result"]["test_accuracy"] == cp["result"]["test_accuracy"]


def test_seeds_give_mean_and_sd(tiny_spec, tmp_path):
    spec = load_spec(tiny_spec)
    spec.sweep = {"training.lr": [0.1]}
    summary = run_experiment(spec, tmp_path / "seeds", seeds=3, jobs=1)
    assert len(summary["cells"]) == 3
    assert sorted(c["seed"] for c in summary["cells"]) == [7, 8, 9]
    (group,) = summary["groups"].values()
    stats = group["metrics"]["test_accuracy"]
    accs = [c["result"]["test_accuracy"] for c in summary["cells"]]
    assert stats["n"] == 3 and np.isclose(stats["mean"], np.mean(accs)) and np.isclose(stats["sd"], np.std(accs, ddof=1))
    assert "± " in (tmp_path / "seeds" / "report.md").read_text()


def test_cluster_backends_skip_cleanly_when_not_installed(tiny_spec, tmp_path):
    import importlib.util

    import pytest

    from mlplab.errors import ConfigError

    for backend, module in (("dask", "dask"), ("ray", "ray")):
        if importlib.util.find_spec(module) is not None:
            continue  # installed: exercised by the cluster test below
        with pytest.raises(ConfigError, match=f"--backend {backend} needs the optional extra"):
            run_experiment(load_spec(tiny_spec), tmp_path / backend, backend=backend)


def test_dask_local_cluster_matches_serial(tiny_spec, tmp_path):
    import pytest

    pytest.importorskip("dask.distributed", reason="dask[distributed] (optional extra) is not installed")
    s = run_experiment(load_spec(tiny_spec), tmp_path / "serial")
    d = run_experiment(load_spec(tiny_spec), tmp_path / "dask", jobs=2, backend="dask")
    for cs, cd in zip(s["cells"], d["cells"]):
        assert cs["result"]["test_accuracy"] == cd["result"]["test_accuracy"]


def test_ray_local_cluster_matches_serial(tiny_spec, tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("ray", reason="ray (optional extra) is not installed")
    import ray

    monkeypatch.delenv("MLPLAB_RAY_ADDRESS", raising=False)
    s = run_experiment(load_spec(tiny_spec), tmp_path / "serial")
    try:
        r = run_experiment(load_spec(tiny_spec), tmp_path / "ray", jobs=2, backend="ray")
    finally:
        ray.shutdown()
    assert [c["result"]["test_accuracy"] for c in s["cells"]] == [c["result"]["test_accuracy"] for c in r["cells"]]
    for cs, cr in zip(s["cells"], r["cells"]):
        for a, b in zip(_params(tmp_path / "serial" / cs["folder"]), _params(tmp_path / "ray" / cr["folder"])):
            np.testing.assert_array_equal(a, b)


def test_cells_differing_in_lr_train_as_one_stack_equal_to_alone(tiny_spec, tmp_path):
    from threadpoolctl import threadpool_limits

    from mlplab.experiments.protocols import generic
    from mlplab.experiments.runner import plan
    from mlplab.experiments.sweep import plan_jobs

    spec = load_spec(tiny_spec)
    cells = plan(spec)
    jobs = plan_jobs(cells, list(range(len(cells))))
    # the grid is lr x hidden: the two learning rates of each width share a job
    assert sorted(sorted(cells[i].tags["model.hidden"][0] for i in job) for job in jobs) == [[8, 8], [16, 16]]
    out = tmp_path / "out"
    summary = run_experiment(spec, out, jobs=1)
    assert all(c["result"]["stacked_with"] == 2 for c in summary["cells"])
    c = summary["cells"][1]
    cfg = json.loads((out / c["folder"] / CELL_FILE).read_text())["config"]
    (tmp_path / "alone").mkdir()
    from mlplab.stacked import blocks_exact

    with threadpool_limits(limits=1):
        alone = generic.run_cell(cfg, tmp_path / "alone")
        # bit for bit where this BLAS computes a wide product's column blocks as it computes
        # them alone (digits: 64 features, 1,348 training rows in batches of 32), else within
        # float32 rounding
        exact = all(blocks_exact(rows, 64, width, 2) for rows in (32, 1348 % 32) for width in (8, 16))
    params = list(zip(_params(out / c["folder"]), _params(tmp_path / "alone")))
    if exact:
        assert alone["test_accuracy"] == c["result"]["test_accuracy"]
        assert alone["snapshots"] == c["result"]["snapshots"]
        for a, b in params:
            np.testing.assert_array_equal(a, b)
    else:
        assert abs(alone["test_accuracy"] - c["result"]["test_accuracy"]) <= 0.01
        for a, b in params:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # momentum does not stack: every cell is a job of its own
    spec.sections["training"]["optimizer_params"] = {"momentum": 0.9}
    cells = plan(spec)
    assert len(plan_jobs(cells, list(range(len(cells))))) == len(cells)
