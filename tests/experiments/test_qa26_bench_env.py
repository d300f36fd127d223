"""Regression tests for the QA-4 findings on the benchmarks and the run/metadata layer.

F3: the experiment report's thread line comes from the cells' own records (cached cells too);
F4: two-hidden row labels name the architecture the cells trained; F8: cells pin the thread
pools they load themselves, and environment.json tells the pools apart; F9: an installed but
unloaded torch is recorded as such; F1, F7, F11: the benchmark scripts' scikit-learn epochs,
estimator medians and --help. No test here times anything.
"""

import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec
from mlplab.experiments.sweep import CELL_FILE
from tinyspecs import TWO_HIDDEN

ROOT = Path(__file__).resolve().parents[2]


def _run_py(code: str) -> str:
    """Run ``code`` in a fresh interpreter (no thread pool or torch loaded yet); its stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """TWO_HIDDEN's two cells run with 1 BLAS thread."""
    tmp = tmp_path_factory.mktemp("qa26")
    spec = tmp / "two.toml"
    spec.write_text(TWO_HIDDEN)
    out = tmp / "run1"
    run_experiment(load_spec(spec), out, threads=1)
    return spec, out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _environment_paragraph(out: Path) -> str:
    return (out / "report.md").read_text().split("## Environment", 1)[1].strip()


# ----------------------------------------------------------------------------- F3


def test_cached_cells_report_the_threads_they_ran_with(tiny_run, tmp_path):
    spec, first = tiny_run
    out = _copy(first, tmp_path / "again")
    summary = run_experiment(load_spec(spec), out, threads=2)  # every cell from the cache
    assert [c["cached"] for c in summary["cells"]] == [True, True]
    text = _environment_paragraph(out)
    assert "every job ran with BLAS pinned to 2" not in text
    assert text.endswith("2 cells loaded from the cache had run with BLAS pinned to 1 thread(s) "
                         "(this invocation's --threads: 2).")
    assert text.startswith("From the cells' own environment.json and cell.json: numpy ")
    assert [c.get("threads") for c in summary["cells"]] == [1, 1]


def test_cells_run_now_and_cached_cells_are_told_apart(tiny_run, tmp_path):
    spec, first = tiny_run
    out = _copy(first, tmp_path / "mixed")
    rerun = sorted((out / "cells").iterdir())[0]
    (rerun / CELL_FILE).unlink()  # this one runs again, with 2 threads
    summary = run_experiment(load_spec(spec), out, threads=2)
    assert _environment_paragraph(out).endswith(
        "1 cell ran in this invocation with BLAS pinned to 2 thread(s); 1 cell loaded from the cache had run "
        "with BLAS pinned to 1 thread(s) (this invocation's --threads: 2).")
    assert sorted((c["cached"], c.get("threads")) for c in summary["cells"]) == [(False, 2), (True, 1)]
    assert json.loads((rerun / CELL_FILE).read_text()).get("threads") == 2


def test_cells_cached_before_cell_json_recorded_threads_read_environment_json(tiny_run, tmp_path):
    spec, first = tiny_run
    out = _copy(first, tmp_path / "older")
    for cell in (out / "cells").glob(f"*/{CELL_FILE}"):  # cell.json as an older mlplab wrote it
        saved = json.loads(cell.read_text())
        saved.pop("threads", None)
        cell.write_text(json.dumps(saved))
    summary = run_experiment(load_spec(spec), out, threads=2)
    assert "had run with BLAS pinned to 1 thread(s)" in _environment_paragraph(out)
    assert [c.get("threads") for c in summary["cells"]] == [1, 1]  # the BLAS rows of their environment.json


# ----------------------------------------------------------------------------- F4


def test_two_hidden_labels_name_the_trained_architecture(tiny_run):
    _, out = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["comparison"]["rows"][0][0] == "2-hidden: 64-8-8-10"
    md = (out / "report.md").read_text()
    assert "### 2-hidden: 64-8-8-10: classification report (test)" in md
    assert "784-500-500-10" not in md


def test_the_reports_own_architectures_keep_the_published_labels(tmp_path):
    from mlplab.experiments.protocols.two_hidden import LABELS, label

    def cell(model: str, describe: str, config: dict):
        folder = tmp_path / model
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"model": describe}))
        return SimpleNamespace(folder=folder, cell=SimpleNamespace(config=config))

    cfg = {"split": {"test_fraction": 0.3}, "training": {"optimizer": "rmsprop"}}
    assert label("model1", cell("model1", "784-50-10 sigmoid/sigmoid mse", cfg)) == LABELS["model1"]
    assert label("model1-textbook", cell("model1-textbook", "784-50-10 sigmoid/sigmoid mse", cfg)) \
        == LABELS["model1-textbook"]
    assert label("two-hidden", cell("two-hidden", "784-500-500-10 sigmoid/sigmoid mse", cfg)) == LABELS["two-hidden"]
    assert label("model2-mlplab", cell("model2-mlplab", "784-500-500-10 sigmoid/softmax cross_entropy", cfg)) \
        == LABELS["model2-mlplab"]
    other = {"split": {"test_fraction": 0.25}, "training": {"optimizer": "adam"}}
    assert label("model1", cell("m1-other", "64-20-10 sigmoid/sigmoid mse", other)) == "Model 1: 64-20-10, 75/25 split"
    assert label("model2-mlplab", cell("m2-other", "64-8-10 relu/softmax cross_entropy", other)) \
        == "Model 2 (mlplab): 64-8-10 relu, softmax CE, Adam"


# ----------------------------------------------------------------------------- F8


_CELL_IN_FRESH_PROCESS = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from tinyspecs import TWO_HIDDEN
from mlplab.experiments.runner import plan
from mlplab.experiments.spec import load_spec
from mlplab.experiments.sweep import execute_cell
spec = Path({tmp!r}) / "two.toml"
spec.write_text(TWO_HIDDEN.replace('"both"', '"corrected"'))
c = plan(load_spec(spec))[0]
assert "sklearn" not in sys.modules  # the cell loads it
execute_cell(c.kind, c.config, {folder!r}, c.key, threads=1)
"""


def test_a_cell_pins_the_thread_pools_it_loads_itself(tmp_path):
    folder = tmp_path / "cell"
    _run_py(_CELL_IN_FRESH_PROCESS.format(tests=str(Path(__file__).parent), tmp=str(tmp_path), folder=str(folder)))
    rows = json.loads((folder / "environment.json").read_text())["blas"]
    assert {r["user_api"] for r in rows} == {"blas", "openmp"}  # scikit-learn's OpenMP was loaded
    assert [(r["user_api"], r["num_threads"]) for r in rows if r["num_threads"] != 1] == []
    assert {r.get("package") for r in rows} >= {"numpy.libs", "scikit_learn.libs"}
    assert json.loads((folder / CELL_FILE).read_text()).get("threads") == 1


def test_environment_rows_name_their_library_without_paths():
    from mlplab.environment import environment_info

    import sklearn.utils._openmp_helpers  # noqa: F401  an OpenMP pool beside the two BLAS ones

    rows = environment_info()["blas"]
    assert all(r["library"] and r["package"] and "/" not in r["library"] + r["package"] for r in rows)
    assert "filepath" not in json.dumps(rows)
    assert len({(r["package"], r["library"]) for r in rows}) == len(rows)
    assert [r["user_api"] for r in rows if r["package"] == "scikit_learn.libs"] == ["openmp"]


def test_a_library_a_cell_imports_later_is_pinned_and_released():
    pytest.importorskip("torch")
    out = _run_py("""
import json, os
from threadpoolctl import threadpool_info
from mlplab.experiments.sweep import cell_threads, pin_new_libraries
def torch_pool():
    return [i["num_threads"] for i in threadpool_info() if "/torch/" in i["filepath"].replace(os.sep, "/")]
with cell_threads(1):
    import torch
    pin_new_libraries()
    inside = [torch_pool(), torch.get_num_threads()]
default = None if os.environ.get("OMP_NUM_THREADS") else len(os.sched_getaffinity(0))
print(json.dumps([inside, torch_pool(), default]))
""")
    inside, after, default = json.loads(out)
    assert inside == [[1], 1]
    if default is not None:
        assert after == [default]  # the cell's limit is undone when it ends


# ----------------------------------------------------------------------------- F9


def test_an_installed_torch_is_recorded_without_importing_it():
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("torch")
    except PackageNotFoundError:
        installed = None
    out = _run_py("""
import json, sys
from mlplab.environment import environment_info
env = environment_info()
print(json.dumps([env["versions"]["torch"], env["torch_loaded"], "torch" in sys.modules]))
""")
    assert json.loads(out) == [installed, False, False]


def test_the_run_report_says_whether_torch_was_loaded():
    from mlplab.report import _environment_blocks

    def torch_row(env):
        rows = _environment_blocks(SimpleNamespace(environment=env))[-1][2]
        return dict((r[0], r[1]) for r in rows)["torch"]

    assert torch_row({"versions": {"torch": "2.0"}, "torch_loaded": False}) == "2.0 (installed, not loaded by this run)"
    assert torch_row({"versions": {"torch": "2.0"}, "torch_loaded": True}) == "2.0"
    assert torch_row({"versions": {"torch": None}, "torch_loaded": False}) == "not installed"
    assert torch_row({"versions": {"torch": None}}) == "n/a"  # an older file: unknown which
    blas = _environment_blocks(SimpleNamespace(environment={"blas": [
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 1, "package": "scikit_learn.libs"}]}))
    assert blas[-1][2][0][0] == "BLAS (openmp, scikit_learn.libs)"


# ----------------------------------------------------------------------------- benchmarks (F1, F7, F11)


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"qa26_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sklearn_epochs_are_one_training():
    from sklearn.exceptions import ConvergenceWarning

    bt = _bench("bench_training")
    rng = np.random.default_rng(0)
    X, y = rng.random((300, 20), dtype=np.float32) * 2 - 1, rng.integers(0, 3, 300)
    sizes = [20, 7, 3]
    clf = bt.sklearn_classifier(sizes, shuffle=False)
    times, timed = bt.sklearn_epochs(clf, X, y, 3)
    assert len(times) == 3 and timed == "epoch loop" and "_fit_stochastic" not in clf.__dict__
    ref = bt.sklearn_classifier(sizes, shuffle=False).set_params(warm_start=False, max_iter=3)
    with pytest.warns(ConvergenceWarning):
        ref.fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_))
    assert clf.loss_curve_ == ref.loss_curve_
    # shuffled: each call draws the next shuffles of one stream (an integer seed would restart it)
    times, _, clf = bt.time_sklearn(sizes, X, y, 2)
    assert len(times) == 2 and len(clf.loss_curve_) == 2
    assert isinstance(clf.random_state, np.random.RandomState)
    assert not np.array_equal(clf.random_state.get_state()[1], np.random.RandomState(123).get_state()[1])


def test_estimator_bench_reports_the_median_of_an_even_count(capsys):
    be = _bench("bench_estimator")
    assert be.main(["--no-mnist", "--digits-epochs", "1", "--hidden", "8", "--repeats", "2", "--threads", "1",
                    "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]["digits"]
    for kind in ("mlplab", "sklearn"):
        assert res[kind]["fit_s"] == statistics.median(res[kind]["fit_s_all"])
    assert res["speedup"] == res["sklearn"]["fit_s"] / res["mlplab"]["fit_s"]


def test_estimator_bench_paired_protocol_gives_both_the_same_start(capsys):
    """Paired: the same initial weights and minibatches, so (digits, a few epochs) the two fits end
    with the same test predictions; the JSON says so per seed."""
    be = _bench("bench_estimator")
    assert be.main(["--no-mnist", "--digits-epochs", "3", "--hidden", "16", "--repeats", "2", "--threads", "1",
                    "--protocol", "paired", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    res = out["results"]["digits"]
    assert out["protocol"] == "paired"
    assert res["predictions_disagreeing"] == [0, 0]
    assert res["mlplab"]["test_accuracy_all"] == res["sklearn"]["test_accuracy_all"]
    assert res["accuracy_difference_mean"] == 0.0
    assert res["mlplab"]["epochs"] == res["sklearn"]["epochs"] == 3
    # the seeds start elsewhere: two different initial draws
    assert res["mlplab"]["test_accuracy_all"][0] != res["mlplab"]["test_accuracy_all"][1] or \
        res["mlplab"]["final_loss_all"][0] != res["mlplab"]["final_loss_all"][1]


def test_estimator_bench_independent_seeds_disagree_somewhere(capsys):
    be = _bench("bench_estimator")
    assert be.main(["--no-mnist", "--digits-epochs", "3", "--hidden", "16", "--repeats", "2", "--threads", "1",
                    "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]["digits"]
    assert sum(res["predictions_disagreeing"]) > 0  # own initialisation and shuffling each


def test_estimator_bench_paired_needs_float32_input():
    be = _bench("bench_estimator")
    with pytest.raises(SystemExit) as exc:
        be.main(["--no-mnist", "--protocol", "paired", "--input-dtype", "float64"])
    assert exc.value.code == 2


def test_bound_steps_help_has_the_whole_first_sentence():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_bound_steps.py"), "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "and with the layers called one by one, in the same process, epochs interleaved." in text
