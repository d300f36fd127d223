"""QA28: a cached result of the wrong shape, and cells trained again on changed data.

1. A cell.json that is valid JSON but whose cached ``result`` holds what no finished cell of its
   kind returns (text where a number belongs, a list where an object belongs, a missing key a
   report reads, NaN, lists of different lengths) runs the cell again, with one warning naming
   the cell.json and the value, as other cache damage does: before, building the report crashed
   with a traceback, or printed the damaged value. The report is then the untampered run's.
2. summary.json (``data_changed``) and the report say which cells were trained again because
   the data they were trained on changed, and which files changed.

Tiny digits runs (and tiny IDX folders) with the cells' own reports left out: seconds."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from mlplab.cli import main
from mlplab.experiments.sweep import CELL_FILE
from test_cache_data_qa27 import LABELS, change_labels, spec_file, write_folder
from test_report_diverged import MNIST_BEST
from tinyspecs import TWO_HIDDEN, generic, ovr, relu

GENERIC = generic("qa28")

#: one tiny run per report that reads cached results: the runner's own tables (generic), and each
#: protocol's report builder (the replay's curve is read when a published curve is given)
SPECS = {
    "generic": GENERIC,
    "relu": relu(),
    "ovr": ovr(),
    "two": TWO_HIDDEN + '[report.published]\ncurve = "50.00/49.00 60.00/59.00"\n',
    "best": MNIST_BEST.format(recipes='["fast"]', frameworks='["mlplab", "sklearn"]'),
}
#: what differs between two trainings of the same cell: the timings
TIMINGS = ("training_time_s", "inference_s_all", "inference_s_all_torch", "time_curve")


def _no_cell_reports(monkeypatch) -> None:
    """The cells' own reports and figures (most of a tiny cell's time) do not matter here: they are
    views of the results, and cell.json does not record them."""
    monkeypatch.setattr("mlplab.report.write_run_report", lambda out: None)


@pytest.fixture(autouse=True)
def no_cell_reports(monkeypatch):
    _no_cell_reports(monkeypatch)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Each spec of :data:`SPECS` run once, untampered: {name: its experiment folder}."""
    root = tmp_path_factory.mktemp("qa28")
    outs = {}
    with pytest.MonkeyPatch.context() as mp:
        _no_cell_reports(mp)
        for name, text in SPECS.items():
            (root / f"{name}.toml").write_text(text)
            assert main(["experiment", "run", str(root / f"{name}.toml"), "--out", str(root / name)]) == 0
            outs[name] = root / name
    return outs


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _cell(out: Path, name: str) -> Path:
    return out / next(c["folder"] for c in _summary(out)["cells"] if c["name"] == name) / CELL_FILE


def _untimed(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in TIMINGS}


def _report_numbers(out: Path) -> list:
    """report.md without what differs between two runs of the same cells: the columns of times and
    of how each cell was obtained (run or cached), the paragraph counting the cached cells and
    timing this run, and the Environment paragraph."""
    lines, drop, previous = [], set(), ""
    for line in (out / "report.md").read_text().split("## Environment")[0].splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not previous.startswith("|"):  # a table's header
                drop = {i for i, c in enumerate(cells) if "time" in c or "wall" in c or c == "status"}
            lines.append([c for i, c in enumerate(cells) if i not in drop])
        elif not line.startswith("Protocol: "):
            lines.append(line)
        previous = line
    return lines


def _set(path: tuple, value):
    def edit(result):
        node = result
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _drop(key: str):
    return lambda result: result.pop(key)


def _snapshots_as_list(result):
    result["snapshots"] = list(result["snapshots"].values())


def _short_curve(result):
    del result["curve"]["eval_accuracy"][1:]


# (spec, cell, edit of its cached result, what the warning says is wrong)
CASES = {
    "accuracy-text": ("generic", "qa28", _set(("test_accuracy",), "0.93"),
                      "result.test_accuracy is '0.93', not a finite number"),
    "accuracy-nan": ("generic", "qa28", _set(("test_accuracy",), math.nan),
                     "result.test_accuracy is NaN, not a finite number"),
    "accuracy-missing": ("generic", "qa28", _drop("test_accuracy"), "result.test_accuracy is missing"),
    "auc-list": ("generic", "qa28", _set(("test_auc_ovr_macro",), [0.9]),
                 "result.test_auc_ovr_macro is a list, not null or a finite number"),
    "snapshots-list": ("relu", "as-published/lr=0.05", _snapshots_as_list,
                       "result.snapshots is a list, not an object"),
    "zero-predictor-missing": ("relu", "as-published/lr=0.05", _drop("zero_predictor"),
                               "result.zero_predictor is missing"),
    "model-test-list": ("ovr", "digit=0", _set(("models", 0, "test"), [0.9]),
                        "result.models[0].test is a list, not an object"),
    "curve-lengths": ("two", "two-hidden/as-published", _short_curve,
                      "result.curve holds lists of different lengths"),
    "time-text": ("best", "fast/mlplab", _set(("training_time_s",), "1.2"),
                  "result.training_time_s is '1.2', not a finite number"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_cached_result_of_the_wrong_shape_runs_the_cell_again(finished, tmp_path, capsys, case):
    spec, name, edit, problem = CASES[case]
    out = shutil.copytree(finished[spec], tmp_path / "ex")
    path = _cell(out, name)
    saved = json.loads(path.read_text())
    edit(saved["result"])
    path.write_text(json.dumps(saved))  # valid JSON (NaN as Python writes it)
    capsys.readouterr()
    assert main(["experiment", "run", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if line.startswith("mlplab: warning:")]
    assert warnings == [f"mlplab: warning: cached cell {name!r} is damaged ({path}: {problem}); running it again"], err
    summary, before = _summary(out), _summary(finished[spec])
    assert {c["name"]: c["cached"] for c in summary["cells"]} == {c["name"]: c["name"] != name for c in before["cells"]}
    results = {c["name"]: _untimed(c["result"]) for c in summary["cells"]}
    assert results == {c["name"]: _untimed(c["result"]) for c in before["cells"]}  # trained again, the same
    assert _untimed(json.loads(path.read_text())["result"]) == results[name]
    assert _report_numbers(out) == _report_numbers(finished[spec])


def test_every_fresh_result_has_the_shape_its_cache_is_checked_against(finished):
    """Else a finished cell would be trained again on every run."""
    from mlplab.experiments.sweep import result_problem

    for out in finished.values():
        for c in _summary(out)["cells"]:
            saved = json.loads((out / c["folder"] / CELL_FILE).read_text())
            assert result_problem(saved["kind"], saved["result"]) is None, (out.name, c["name"])


#: (kind, edit of a finished cell's result, what is wrong with it)
PHRASES = {
    "snapshot-text": ("relu_softmax:run_cell", _set(("snapshots", "3", "test_accuracy"), "0.5"),
                      "result.snapshots['3'].test_accuracy is '0.5', not a finite number"),
    "snapshot-key": ("relu_softmax:run_cell", _set(("snapshots", "3.0"), {}),
                     "result.snapshots has the key '3.0', not an epoch number"),
    "cost-object": ("relu_softmax:run_cell", _set(("costs", 1), {"iteration": 1}),
                    "result.costs[1] is an object, not a list of 3"),
    "cost-short": ("relu_softmax:run_cell", _set(("costs", 1), [1, 0.5]),
                   "result.costs[1] is a list of 2, not a list of 3"),
    "models-empty": ("ovr_logistic:digit_cell", _set(("models",), []),
                     "result.models is an empty list, not a list of at least 1 item"),
    "model-diverged-no-error": ("ovr_logistic:digit_cell",
                                _set(("models", 0), {"digit": 0, "lr": 0.5, "init": "zeros", "status": "diverged"}),
                                "result.models[0].error is missing"),
    "beats-number": ("ovr_logistic:digit_cell", _set(("models", 0, "test", "beats_baseline"), 1),
                     "result.models[0].test.beats_baseline is 1, not true or false"),
    "chunked-auc-text": ("two_hidden:replay_cell", _set(("chunked_auc",), "0.99"),
                         "result.chunked_auc is '0.99', not null or a finite number"),
    "confusion-float": ("two_hidden:replay_cell", _set(("confusion_matrix", 0, 0), 3.0),
                        "result.confusion_matrix[0][0] is 3.0, not a whole number"),
    "class-report-list": ("two_hidden:replay_cell", _set(("classification_report", "0", "recall"), [1]),
                          "result.classification_report['0'].recall is a list, not null or a finite number"),
    "diverged-no-error": ("generic:run_cell", _set(("status",), "diverged"), "result.error is missing"),
    "infinity-elsewhere": ("generic:run_cell", _set(("x",), [1.0, math.inf]),
                           "result.x[1] is Infinity, not a finite number"),
}
#: a finished cell of each kind: (spec, cell)
SAMPLES = {"relu_softmax:run_cell": ("relu", "corrected/lr=0.05"), "ovr_logistic:digit_cell": ("ovr", "digit=0"),
           "two_hidden:replay_cell": ("two", "two-hidden/as-published"), "generic:run_cell": ("generic", "qa28")}


@pytest.mark.parametrize("case", list(PHRASES))
def test_what_is_wrong_with_a_cached_result_is_said_in_one_phrase(finished, case):
    """More of what the reports read, checked on the tiny runs' results without running them again."""
    from mlplab.experiments.sweep import result_problem

    kind, edit, problem = PHRASES[case]
    saved = json.loads(_cell(finished[SAMPLES[kind][0]], SAMPLES[kind][1]).read_text())
    assert saved["kind"] == kind
    edit(saved["result"])
    assert result_problem(kind, saved["result"]) == problem


# ----------------------------------------------------------------------------- 2: data that changed


def _paragraph(out: Path) -> str | None:
    found = [p for p in (out / "report.md").read_text().split("\n\n") if p.startswith("Trained again on changed data")]
    assert len(found) <= 1
    return found[0] if found else None


def _labels_sha(out: Path, folder: str) -> str:
    return json.loads((out / folder / CELL_FILE).read_text())["data"][0]["files"][LABELS]


def test_the_summary_and_report_say_which_cells_were_trained_again_on_changed_data(tmp_path, capsys):
    a, b = write_folder(tmp_path / "a", 1), write_folder(tmp_path / "b", 2)
    spec, out = spec_file(tmp_path, [a, b]), tmp_path / "out"
    spec.write_text(spec.read_text().replace("[0.05, 0.2]", "[0.05]"))  # one cell per folder
    args = ["experiment", "run", str(spec), "--out", str(out)]
    assert main(args) == 0
    assert _summary(out)["data_changed"] == [] and _paragraph(out) is None
    folders = {c["name"]: c["folder"] for c in _summary(out)["cells"]}
    cell_a, cell_b = (next(n for n in folders if f"dataset={d}" in n) for d in (a, b))

    def change(folder: Path, cell: str) -> str:
        """Change ``folder``'s labels: the phrase the warning and the report give for ``cell``."""
        before = _labels_sha(out, folders[cell])
        change_labels(folder)
        return f"{LABELS} SHA-256 {before[:12]} -> "

    phrase = change(a, cell_a)
    capsys.readouterr()
    assert main(args) == 0
    warning = next(l for l in capsys.readouterr().err.splitlines() if l.startswith("mlplab: warning:"))
    summary = _summary(out)
    assert [c["name"] for c in summary["cells"] if not c["cached"]] == [cell_a]  # b's cell stays cached
    phrase += _labels_sha(out, folders[cell_a])[:12]
    assert phrase in warning  # the phrase the run's warning printed
    assert summary["data_changed"] == [
        {"cell": cell_a, "folder": folders[cell_a],
         "data": [{"dataset": str(a), "data_dir": None, "files": [LABELS], "changes": [phrase]}]}]
    assert _paragraph(out) == (
        "Trained again on changed data: 1 cached cell had been trained on data that has changed since, so this run "
        "trained it again (summary.json's data_changed lists it with the changed files). "
        f"Dataset {a} ({phrase}): {cell_a}.")
    assert "Trained again on changed data: 1 cached cell" in (out / "report.html").read_text()

    phrases = [change(a, cell_a), change(b, cell_b)]  # both: one entry per cell, one part per dataset
    assert main(args) == 0
    phrases = [p + _labels_sha(out, folders[c])[:12] for p, c in zip(phrases, (cell_a, cell_b))]
    changed = {e["cell"]: e["data"][0]["changes"] for e in _summary(out)["data_changed"]}
    assert changed == {cell_a: [phrases[0]], cell_b: [phrases[1]]}
    assert _paragraph(out) == (
        "Trained again on changed data: 2 cached cells had been trained on data that has changed since, so this run "
        "trained them again (summary.json's data_changed lists them with the changed files). "
        f"Dataset {a} ({phrases[0]}): {cell_a}; dataset {b} ({phrases[1]}): {cell_b}.")

    assert main(args) == 0  # the data did not change since: nothing to say
    assert _summary(out)["data_changed"] == [] and _paragraph(out) is None


def test_another_scikit_learn_is_a_change_without_files(finished, tmp_path):
    import sklearn

    out = shutil.copytree(finished["generic"], tmp_path / "ex")
    path = _cell(out, "qa28")
    saved = json.loads(path.read_text())
    saved["data"][0]["sklearn_version"] = "0.1"  # as if trained under another scikit-learn
    path.write_text(json.dumps(saved))
    assert main(["experiment", "run", "--resume", str(out)]) == 0
    change = f"scikit-learn 0.1 -> {sklearn.__version__}"
    assert _summary(out)["data_changed"] == [
        {"cell": "qa28", "folder": path.parent.relative_to(out).as_posix(),
         "data": [{"dataset": "digits", "data_dir": None, "files": [], "changes": [change]}]}]
    assert _paragraph(out) == ("Trained again on changed data: 1 cached cell had been trained on data that has "
                               "changed since, so this run trained it again (summary.json's data_changed lists it "
                               f"with the changed files). Dataset digits ({change}): qa28.")
