"""QA27: a cached experiment cell is reused only while its data is the data it was trained on.

cell.json records which data the cell read (dataset name, each IDX file's SHA-256, or
scikit-learn's version for digits); a cell whose dataset now holds other data is trained again,
with one warning counting such cells per dataset. Cells cached by versions that recorded no
data are reused as before. Tiny synthetic IDX folders written into tmp_path: seconds to run."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlplab.data import write_idx
from mlplab.data.fetch import FILENAMES
from mlplab.experiments import sweep
from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec
from mlplab.experiments.sweep import CELL_FILE, file_digests
from mlplab.report import write_run_report

LABELS = "train-labels-idx1-ubyte"


def write_folder(folder: Path, seed: int, n_train: int = 120, n_test: int = 40) -> Path:
    """Four gzipped IDX files of 28x28 images, every class 0-9 present."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": (np.arange(n_test) % 10).astype(np.uint8)}
    for key, array in arrays.items():
        write_idx(folder / f"{FILENAMES[key]}.gz", array)
    return folder


def change_labels(folder: Path) -> None:
    """Another training label file (two labels swapped): other data under the same names."""
    from mlplab.data import read_idx

    path = folder / f"{LABELS}.gz"
    y = read_idx(path)
    y[[0, 1]] = y[[1, 0]]
    write_idx(path, y)


def spec_file(tmp_path: Path, datasets: list[Path] | None = None, dataset: str = "digits") -> Path:
    """The generic runner, two learning rates (one stacked job per dataset), 1 epoch; a sweep
    over ``datasets`` (folders) when given."""
    sweep_axes = f'"training.lr" = [0.05, 0.2]\n'
    if datasets:
        sweep_axes += '"data.dataset" = [' + ", ".join(json.dumps(str(d)) for d in datasets) + "]\n"
    text = textwrap.dedent(f"""
        name = "cache-data"
        runner = "generic"
        protocol = "corrected"
        [data]
        dataset = {json.dumps(dataset)}
        [split]
        kind = "canonical"
        [preprocessing]
        scaling = "unit"
        dtype = "float32"
        [model]
        hidden = [4]
        hidden_activation = "relu"
        [training]
        optimizer = "sgd"
        lr = 0.1
        batch_size = 40
        epochs = 1
        seed = 3
        record_epochs = [1]
        [sweep]
        """) + sweep_axes
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def run(spec: Path, out: Path):
    """Run the experiment; (summary, warning messages, {cell name: cached})."""
    events = []
    summary = run_experiment(load_spec(str(spec)), out, progress=events.append)
    warnings = [e["message"] for e in events if e.get("event") == "warning"]
    return summary, warnings, {c["name"]: c["cached"] for c in summary["cells"]}


def cell_folder(out: Path, summary, name: str) -> Path:
    return out / next(c["folder"] for c in summary["cells"] if c["name"] == name)


def metrics_sha(folder: Path, file: str = LABELS) -> str:
    return json.loads((folder / "metrics.json").read_text())["data"]["files"][file]["sha256"]


@pytest.fixture(autouse=True)
def no_cell_figures(monkeypatch):
    """The cells' own reports and figures (most of a tiny cell's time) do not matter here."""
    monkeypatch.setattr("mlplab.report.write_run_report", lambda out: None)


@pytest.fixture
def two_folders(tmp_path):
    return write_folder(tmp_path / "a", 1), write_folder(tmp_path / "b", 2)


def test_changed_file_retrains_only_the_cells_that_read_it(tmp_path, two_folders):
    a, b = two_folders
    spec, out = spec_file(tmp_path, [a, b]), tmp_path / "out"
    summary, warnings, cached = run(spec, out)
    assert not any(cached.values()) and warnings == []
    names_a = [c["name"] for c in summary["cells"] if f"dataset={a}" in c["name"]]
    assert len(names_a) == 2 and len(cached) == 4
    before = {n: metrics_sha(cell_folder(out, summary, n)) for n in cached}
    saved = json.loads((cell_folder(out, summary, names_a[0]) / CELL_FILE).read_text())
    assert saved["data"] == [{"dataset": str(a), "data_dir": None, "name": str(a),
                              "files": {n: json.loads((cell_folder(out, summary, names_a[0]) / "metrics.json")
                                                      .read_text())["data"]["files"][n]["sha256"]
                                        for n in sorted(FILENAMES.values())}}]

    change_labels(a)
    summary, warnings, cached = run(spec, out)
    assert {n for n, c in cached.items() if not c} == set(names_a)  # b's cells stay cached
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"2 cached cells were trained on other data than dataset {a} holds now "
                                  f"({LABELS} SHA-256 {before[names_a[0]][:12]} -> ")
    assert warnings[0].endswith(": training them again")
    for n in cached:
        now = metrics_sha(cell_folder(out, summary, n))
        assert (now != before[n]) == (n in names_a)
        assert json.loads((cell_folder(out, summary, n) / CELL_FILE).read_text())["data"][0]["files"][LABELS] == now

    summary, warnings, cached = run(spec, out)  # the data did not change since: every cell is reused
    assert all(cached.values()) and warnings == []


def test_the_command_line_warns_once(tmp_path):
    from mlplab.cli import main

    a = write_folder(tmp_path / "a", 1)
    spec, out = spec_file(tmp_path, dataset=str(a)), tmp_path / "out"
    args = ["experiment", "run", str(spec), "--out", str(out)]
    assert main(args) == 0
    change_labels(a)
    import contextlib
    import io

    err, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
        assert main(args) == 0
    lines = [l for l in err.getvalue().splitlines() if l.startswith("mlplab: warning:")]
    assert len(lines) == 1, err.getvalue()
    assert lines[0].startswith(f"mlplab: warning: 2 cached cells were trained on other data than dataset {a} holds "
                               f"now ({LABELS} SHA-256 ")
    assert lines[0].endswith("): training them again")
    assert "2 cells (0 cached)" in stdout.getvalue()


def test_same_bytes_rewritten_or_read_elsewhere_reuse_every_cell(tmp_path):
    a = write_folder(tmp_path / "a", 1)
    spec, out = spec_file(tmp_path, dataset=str(a)), tmp_path / "out"
    summary, _, _ = run(spec, out)
    folder = cell_folder(out, summary, summary["cells"][0]["name"])
    assert json.loads((folder / CELL_FILE).read_text())["data"][0]["name"] == str(a)
    # the same decompressed bytes, stored anew (raw instead of gzipped, newer mtime): the same data
    for name in FILENAMES.values():
        gz = a / f"{name}.gz"
        from mlplab.data import read_idx

        write_idx(a / name, read_idx(gz), compress=False)
        gz.unlink()
    summary, warnings, cached = run(spec, out)
    assert all(cached.values()) and warnings == []


def test_cells_that_record_no_data_are_reused_and_metrics_json_serves_the_last_version(tmp_path):
    a = write_folder(tmp_path / "a", 1)
    spec, out = spec_file(tmp_path, dataset=str(a)), tmp_path / "out"
    summary, _, _ = run(spec, out)
    old, last = (cell_folder(out, summary, c["name"]) for c in summary["cells"])
    # a cell of an older mlplab: neither cell.json nor metrics.json says which data it read
    metrics = json.loads((old / "metrics.json").read_text())
    del metrics["data"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    saved = json.loads((old / CELL_FILE).read_text())
    del saved["data"]
    saved["files"] = file_digests(old)
    (old / CELL_FILE).write_text(json.dumps(saved))
    # a cell of the previous version: only its metrics.json records the data
    saved = json.loads((last / CELL_FILE).read_text())
    del saved["data"]
    (last / CELL_FILE).write_text(json.dumps(saved))

    change_labels(a)
    summary, warnings, cached = run(spec, out)
    names = [c["name"] for c in summary["cells"]]
    assert cached == {names[0]: True, names[1]: False}
    assert len(warnings) == 1 and warnings[0].startswith(f"1 cached cell was trained on other data than dataset {a}")
    assert warnings[0].endswith(": training it again")
    assert "data" not in json.loads((old / "metrics.json").read_text())  # reused as it was


def test_digits_cells_record_the_scikit_learn_version(tmp_path):
    import sklearn

    spec, out = spec_file(tmp_path), tmp_path / "out"
    summary, _, _ = run(spec, out)
    first = cell_folder(out, summary, summary["cells"][0]["name"])
    saved = json.loads((first / CELL_FILE).read_text())
    assert saved["data"] == [{"dataset": "digits", "data_dir": None, "name": "digits",
                              "sklearn_version": sklearn.__version__}]
    saved["data"][0]["sklearn_version"] = "0.1"  # as if trained under another scikit-learn
    (first / CELL_FILE).write_text(json.dumps(saved))
    summary, warnings, cached = run(spec, out)
    assert [c["cached"] for c in summary["cells"]] == [False, True]
    assert warnings == [f"1 cached cell was trained on other data than dataset digits holds now (scikit-learn 0.1 -> "
                        f"{sklearn.__version__}): training it again"]


def test_a_dataset_that_cannot_be_read_now_leaves_its_cells_reused_with_a_warning(tmp_path):
    import shutil

    a = write_folder(tmp_path / "a", 1)
    spec, out = spec_file(tmp_path, dataset=str(a)), tmp_path / "out"
    run(spec, out)
    shutil.rmtree(a)
    summary, warnings, cached = run(spec, out)
    assert all(cached.values())
    assert len(warnings) == 1 and warnings[0].startswith(f"cannot read dataset {a} now (")
    assert warnings[0].endswith("2 cached cells are reused without checking that it holds the data they were "
                                "trained on")


def test_the_current_data_is_identified_once_per_run_without_loading(tmp_path, monkeypatch):
    """Known datasets cost nothing (their checksums are their identity); a folder is hashed once
    per run however many cached cells read it, and never parsed in the parent."""
    from mlplab.data import datasets, fetch, idx
    from mlplab.data.fetch import KNOWN_DATASETS

    monkeypatch.setattr(datasets, "load_dataset", None)  # any load would fail
    assert datasets.current_data_identity("mnist") == {
        "name": "mnist", "files": {FILENAMES[k]: sha for k, sha in KNOWN_DATASETS["mnist"].sha256.items()}}
    a = write_folder(tmp_path / "a", 1)
    hashed = []
    real = idx.idx_sha256
    monkeypatch.setattr(fetch, "idx_sha256", lambda p: hashed.append(p) or real(p))
    now = sweep.DataNow()
    for _ in range(3):
        assert now.now(str(a), None)["name"] == str(a)
    assert len(hashed) == 4


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path):
    from mlplab.experiments.checkpoint import attach
    from mlplab.network import MLP
    from mlplab.training import Trainer

    def trainer():
        return Trainer(MLP([4, 3, 2], seed=0), {"name": "sgd"}, lr=0.1, batch_size=2, seed=0)

    record = {"name": "x", "files": {"f": "1" * 64}}
    sweep._CELL_DATA.clear()
    sweep.note_data("x", None, record)
    first = attach(tmp_path, trainer())
    first.write()
    assert attach(tmp_path, trainer()).resumed_epoch is not None  # the same data: resumed
    first.write()
    sweep._CELL_DATA.clear()
    sweep.note_data("x", None, {**record, "files": {"f": "2" * 64}})
    assert attach(tmp_path, trainer()).resumed_epoch is None  # other data: started again
    assert not (tmp_path / "checkpoint.npz").exists()
    sweep._CELL_DATA.clear()


# ----------------------------------------------------------------------------- model files


def train_model(tmp_path: Path, dataset: str) -> Path:
    from mlplab.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", dataset, "--hidden", "4", "--epochs", "1", "--batch-size", "40", "--quiet",
                 "--no-report", "--out", str(out)]) == 0
    return out / "model.npz"


def evaluate(model: Path, dataset: str, out: Path, capsys):
    """``mlplab evaluate``: (its metrics.json's training_data, its 'data:' line)."""
    from mlplab.cli import main

    capsys.readouterr()
    assert main(["evaluate", str(model), "--dataset", dataset, "--out", str(out), "--no-report"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("data: "))
    return json.loads((out / "metrics.json").read_text())["training_data"], line


def test_model_file_records_its_data_and_evaluate_says_whether_it_reads_the_same(tmp_path, capsys):
    from mlplab.serialization import load_model

    a = write_folder(tmp_path / "a", 1)
    model = train_model(tmp_path, str(a))
    recorded = load_model(model).preprocessing["data"]
    assert recorded == json.loads((model.parent / "metrics.json").read_text())["data"]
    assert recorded["files"][LABELS]["path"] == str(a / f"{LABELS}.gz")

    compared, line = evaluate(model, str(a), tmp_path / "same", capsys)
    assert compared == {"same": True, "text": "same data files as training (every file's SHA-256 matches)"}
    assert line == "data: same data files as training (every file's SHA-256 matches)"
    md, _ = write_run_report(tmp_path / "same")  # the real one (the fixture leaves the cells' out)
    assert "- Data vs the model's training data: same data files as training (every file's SHA-256 matches)" \
        in md.read_text()

    import shutil

    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert evaluate(model, str(b), tmp_path / "copy", capsys)[0]["same"] is True  # the same files elsewhere
    before = recorded["files"]["t10k-labels-idx1-ubyte"]["sha256"]
    from mlplab.data import read_idx

    y = read_idx(b / "t10k-labels-idx1-ubyte.gz")
    y[[0, 1]] = y[[1, 0]]
    write_idx(b / "t10k-labels-idx1-ubyte.gz", y)
    compared, line = evaluate(model, str(b), tmp_path / "other", capsys)
    assert compared["same"] is False
    assert compared["text"].startswith(
        f"different data than training: t10k-labels-idx1-ubyte SHA-256 {before[:12]} -> ")
    assert line == f"data: {compared['text']}"


def test_digits_models_and_model_files_without_a_data_record(tmp_path, capsys):
    import sklearn

    from mlplab.serialization import load_model, save_model

    model = train_model(tmp_path, "digits")
    compared, _ = evaluate(model, "digits", tmp_path / "ev", capsys)
    assert compared == {"same": True, "text": f"same data as training (digits, scikit-learn {sklearn.__version__})"}
    # a model file of an older mlplab: no preprocessing.data; it loads and evaluates as before
    mf = load_model(model)
    prep = {k: v for k, v in mf.preprocessing.items() if k != "data"}
    old = save_model(tmp_path / "old.npz", mf.net, preprocessing=prep, classes=mf.classes, training=mf.training,
                     extra_arrays=mf.extra_arrays)
    assert "data" not in load_model(old).preprocessing
    compared, line = evaluate(old, "digits", tmp_path / "ev-old", capsys)
    assert compared["same"] is None
    assert line.startswith("data: the model file does not record the data it was trained on")


def test_train_resume_refuses_data_that_changed_since_the_checkpoint(tmp_path, capsys):
    """A run interrupted on a folder dataset resumes on the same files (also from a copy of them
    elsewhere), and is refused, naming the checkpoint and the changed file, once they changed."""
    import shutil

    import pytest

    from mlplab.cli import main
    from mlplab.errors import TrainingInterrupted
    from mlplab.runs import load_config, train_run
    from mlplab.training import Callback

    class StopAfterFirst(Callback):
        def on_epoch_end(self, trainer, logs):
            trainer.interrupt_requested = True

    folder = write_folder(tmp_path / "data", seed=3)
    cfg = load_config(None, {"data": {"dataset": str(folder)}, "model": {"hidden": [8]},
                             "training": {"epochs": 3, "batch_size": 32, "threads": 1}})
    runs = {}
    for name in ("same", "changed"):
        with pytest.raises(TrainingInterrupted):
            train_run(cfg, tmp_path / name, callbacks=[StopAfterFirst()], report=False)
        runs[name] = tmp_path / name
    assert main(["train", "--resume", str(runs["same"]), "--quiet", "--no-report"]) == 0
    change_labels(folder)
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in runs["changed"].iterdir() if p.is_file()}
    assert main(["train", "--resume", str(runs["changed"]), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "checkpoint.npz" in err and "other data" in err and LABELS in err, err
    assert {p.name: p.read_bytes() for p in runs["changed"].iterdir() if p.is_file()} == before  # nothing written
    shutil.rmtree(folder)
