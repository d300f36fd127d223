"""``--quick`` of every built-in experiment on real MNIST.

No timing is asserted here (a loaded machine would fail it): the wall times of the quick runs
are measured by ``benchmarks/bench_experiments.py``. Marked slow (about 2.5 minutes in all): ``make
test`` leaves them out, ``make test-slow`` and CI run them.
"""

import json

import numpy as np
import pytest

from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec

pytestmark = pytest.mark.slow


def _run(name, out, data_dir, jobs=2):
    spec = load_spec(name, quick=True, overrides={"data": {"data_dir": str(data_dir)}})
    summary = run_experiment(spec, out, jobs=jobs)
    md = (out / "report.md").read_text()
    assert md.splitlines()[2].startswith("## Published vs reproduced vs corrected")
    assert (out / "report.html").exists() and (out / "summary.json").exists()
    return summary, md


def test_two_hidden_layers_quick_replays_published_curve(mnist_data_dir, tmp_path):
    summary, md = _run("two-hidden-layers", tmp_path / "e1", mnist_data_dir)
    names = {c["name"] for c in summary["cells"]}
    assert {"model1-textbook/as-published", "model1/as-published", "two-hidden/as-published",
            "model2-mlplab"} <= names
    match = summary["curve_match"]
    assert match["epochs_compared"] == 3
    # the replayed random streams reproduce the published epochs to rounding (2 decimals)
    assert match["max_abs_diff_train_pp"] < 0.02 and match["max_abs_diff_test_pp"] < 0.02
    two = next(c for c in summary["cells"] if c["name"] == "two-hidden/as-published")["result"]
    assert two["chunked_auc"] is not None and two["test_auc_ovo_macro"] is not None
    assert round(two["initial_accuracy"] * 100, 1) == 9.9 and round(two["initial_mse"], 1) == 0.2
    assert "96.36" in md and "0.9967" in md


def test_ovr_logistic_quick(mnist_data_dir, tmp_path):
    summary, md = _run("ovr-logistic", tmp_path / "e2", mnist_data_dir)
    assert len(summary["cells"]) == 10
    models = summary["models"]
    assert len(models) == 10 * 3 * 2
    for m in models:
        t = m["test"]
        assert t["n_samples"] == 10000 and 0.88 < t["baseline_accuracy"] < 0.92
        assert t["beats_baseline"] == (t["accuracy"] > t["baseline_accuracy"])
    assert "88.45 / 90.83" in md


def test_relu_softmax_quick_and_cli(mnist_data_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from mlplab.cli_experiment import register

    app = typer.Typer()
    register(app)
    out = tmp_path / "e3"
    res = CliRunner().invoke(app, ["experiment", "run", "relu-softmax-full-batch", "--quick", "--jobs", "2",
                                   "--out", str(out), "--data-dir", str(mnist_data_dir)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["cells"]) == 4
    for c in summary["cells"]:
        assert set(c["result"]["snapshots"]) == {"20", "50", "100"}
    corrected = [c for c in summary["cells"] if c["name"].startswith("corrected")]
    assert max(c["result"]["test_accuracy"] for c in corrected) > 0.5
    zp = summary["cells"][0]["result"]["zero_predictor"]
    assert zp["train"] < -300  # the label-MAE "accuracy" of an all-zero predictor
    # the two learning rates of each protocol trained as one stacked model, which gives what
    # training the cell alone gives (bit for bit on one BLAS thread where the BLAS computes a
    # wide product's column blocks as it computes them alone, else within float32 rounding)
    assert all(c["result"]["stacked_with"] == 2 for c in summary["cells"])
    from threadpoolctl import threadpool_limits

    from mlplab.experiments.protocols import relu_softmax
    from mlplab.serialization import load_model
    from mlplab.stacked import blocks_exact

    cell = next(c for c in summary["cells"] if c["name"] == "corrected/lr=0.05")
    cfg = json.loads((out / cell["folder"] / "cell.json").read_text())["config"]
    alone = tmp_path / "alone"
    alone.mkdir()
    with threadpool_limits(limits=1):
        res_alone = relu_softmax.run_cell(cfg, alone)
        exact = blocks_exact(10000, 784, 32, 2)
    stacked_net = load_model(out / cell["folder"] / "model.npz").net
    pairs = list(zip(stacked_net.get_weights(), load_model(alone / "model.npz").net.get_weights()))
    if exact:
        assert res_alone["snapshots"] == cell["result"]["snapshots"]
        assert res_alone["costs"] == cell["result"]["costs"]
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)
    else:
        assert res_alone["snapshots"].keys() == cell["result"]["snapshots"].keys()
        np.testing.assert_allclose(np.array(res_alone["costs"], dtype=float),
                                   np.array(cell["result"]["costs"], dtype=float), rtol=1e-5)
        for a, b in pairs:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # a second invocation loads every cell from the cache
    res = CliRunner().invoke(app, ["experiment", "run", "relu-softmax-full-batch", "--quick", "--out", str(out),
                                   "--data-dir", str(mnist_data_dir)])
    assert res.exit_code == 0 and "4 cached" in res.output


def test_cli_list_show_and_errors(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mlplab.cli_experiment import register

    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["experiment", "list"])
    assert r.exit_code == 0 and "two-hidden-layers" in r.output
    r = CliRunner().invoke(app, ["experiment", "show", "ovr-logistic"])
    assert r.exit_code == 0 and 'runner = "ovr-logistic"' in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[training]\nlr = "fast"\n')
    r = CliRunner().invoke(app, ["experiment", "run", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0
    assert "bad.toml: training.lr = 'fast'" in str(r.exception)


def test_mnist_best_quick(mnist_data_dir, tmp_path):
    summary, md = _run("mnist-best", tmp_path / "e4", mnist_data_dir)
    by = {c["name"]: c["result"] for c in summary["cells"]}
    assert {"fast/mlplab", "fast/sklearn", "best/mlplab", "best/sklearn"} <= set(by)
    for res in by.values():
        assert res["test_accuracy"] > 0.85 and res["test_auc_ovr_macro"] > 0.98
        assert len(res["time_curve"]) == 3
    assert (tmp_path / "e4" / "figures" / "accuracy_vs_seconds.png").exists()
