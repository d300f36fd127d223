"""QA 26 (a new user's audit, /tmp/qa5/findings.md): model files saved from the library record
their scaling (1), `evaluate` checks input sizes before loading data (6), `experiment run`'s
table at 80 columns (3), gradcheck's verdict (12), the metrics table and progress line (8),
and a canonical run's unused test_fraction (10). All on the offline digits data."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mlplab.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = Path(__file__).resolve().parents[2]


def _readme_library_block() -> str:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)[0]


# ----------------------------------------------------------------------------- finding 1
def test_a_model_saved_the_readme_way_evaluates_through_the_cli_as_in_python(tmp_path, monkeypatch, capsys):
    """The README's first snippet, on digits with a small net: the CLI scales inputs as in training."""
    code = _readme_library_block()
    assert "save_model(\"model.npz\", net, trainer=trainer, scaler=scaler, dataset=ds)" in code
    code = (code.replace('load_dataset("mnist")', 'load_dataset("digits")')
            .replace("[784, 500, 500, 10]", "[64, 32, 10]").replace("epochs=50", "epochs=40"))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    python_acc = float(np.mean(scope["net"].predict(scope["Xt"]) == scope["ds"].y_test))
    assert python_acc > 0.5
    capsys.readouterr()
    assert main(["evaluate", "model.npz", "--out", "ev", "--no-report"]) == 0
    assert "warning" not in capsys.readouterr().err  # scaled, split recorded, dataset known
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["test"]["accuracy"] == pytest.approx(python_acc)


def test_the_estimators_save_records_the_scaler_given(tmp_path, capsys):
    from mlplab.data import load_dataset
    from mlplab.data.preprocessing import Scaler
    from mlplab.estimator import MLPClassifier
    from mlplab.serialization import load_model

    ds = load_dataset("digits")
    scaler = Scaler("standard", pixel_max=ds.pixel_max).fit(ds.X_train)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    score = clf.fit(scaler.transform(ds.X_train), ds.y_train).score(scaler.transform(ds.X_test), ds.y_test)
    clf.save(tmp_path / "clf.npz", scaler=scaler, dataset=ds)
    mf = load_model(tmp_path / "clf.npz")
    assert mf.preprocessing["scaler"]["kind"] == "standard" and set(mf.extra_arrays) >= {"scaler_mean", "scaler_std"}
    assert mf.preprocessing["image_shape"] == [8, 8] and mf.preprocessing["dataset"] == "digits"
    assert main(["evaluate", str(tmp_path / "clf.npz"), "--out", str(tmp_path / "ev"), "--no-report"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["test"]["accuracy"] == pytest.approx(score)
    assert MLPClassifier.load(tmp_path / "clf.npz").score(scaler.transform(ds.X_test), ds.y_test) == score


def test_save_model_takes_a_dataset_name_and_refuses_two_records(tmp_path):
    from mlplab.data.preprocessing import Scaler
    from mlplab.network import MLP
    from mlplab.serialization import load_model, save_model

    net = MLP([784, 10], "sigmoid", "softmax", "cross_entropy", seed=0)
    save_model(tmp_path / "m.npz", net, scaler=Scaler("unit"), dataset="mnist")
    prep = load_model(tmp_path / "m.npz").preprocessing
    assert prep["image_shape"] == [28, 28] and prep["pixel_max"] == 255 and prep["scaler"]["kind"] == "unit"
    with pytest.raises(ValueError, match="not both"):
        save_model(tmp_path / "n.npz", net, scaler=Scaler("unit"), preprocessing={})


# ----------------------------------------------------------------------------- finding 6
def _digits_model(path: Path) -> Path:
    from mlplab.data.preprocessing import Scaler
    from mlplab.network import MLP
    from mlplab.serialization import save_model

    save_model(path, MLP([64, 8, 10], "relu", "softmax", "cross_entropy", seed=0),
               scaler=Scaler("unit", pixel_max=16), dataset="digits")
    return path


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "folder"])
def test_evaluate_refuses_another_input_size_before_loading_any_data(dataset, tmp_path, monkeypatch, capsys):
    import mlplab.data
    import mlplab.runs

    fail = lambda *a, **k: pytest.fail("loaded the data before checking the input size")  # noqa: E731
    monkeypatch.setattr(mlplab.runs, "prepare_data", fail)
    monkeypatch.setattr(mlplab.data, "load_dataset", fail)
    if dataset == "folder":  # only the IDX header of the test images is read
        folder = tmp_path / "mine"
        folder.mkdir()
        (folder / "t10k-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + np.array([5, 28, 28], ">u4").tobytes())
        dataset = str(folder)
    model = _digits_model(tmp_path / "m.npz")
    capsys.readouterr()
    assert main(["evaluate", str(model), "--dataset", dataset, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err == f"mlplab: error: {model}: the model expects 64 input features but dataset {dataset!r} has 784\n"


# ----------------------------------------------------------------------------- finding 3
HEADER = ["digit", "published train / test (%), lr 0.01, U(0,1)", "reproduced train / test (%), lr 0.01, U(0,1)",
          "all-negative test baseline (%)", "beats baseline", "corrected: balanced accuracy (%)", "corrected: AUC",
          "corrected: F1", "corrected: zeros init, test acc / balanced (%)"]
ROWS = [[str(d), "88.45 / 90.83", "50.03 / 9.80", "90.20", "NO", "50.00", "0.7779", "0.179", "97.61 / 88.76"]
        for d in range(3)]


@pytest.mark.parametrize("width", [80, 200])
def test_experiment_table_is_readable_at_the_consoles_width(width):
    from rich.console import Console

    from mlplab.cli_experiment import QUICK_NOTE, print_comparison

    buf = io.StringIO()
    print_comparison(Console(file=buf, width=width, highlight=False), "One-vs-rest: published vs reproduced",
                     HEADER, ROWS, quick=True)
    text = buf.getvalue()
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    for value in ("88.45 / 90.83", "50.03 / 9.80", "97.61 / 88.76", "0.7779"):  # never split over lines
        assert sum(value in line for line in lines) == len(ROWS)
    assert "corrected:" not in text and "(corrected" in text and "protocol)" in text
    assert " ".join(QUICK_NOTE.split()) in " ".join(text.split())
    assert "--quick" in QUICK_NOTE and "not comparable" in QUICK_NOTE


def test_experiment_table_has_no_quick_note_for_a_full_run():
    from rich.console import Console

    from mlplab.cli_experiment import print_comparison

    buf = io.StringIO()
    print_comparison(Console(file=buf, width=80), "t", HEADER, ROWS, quick=False)
    assert "--quick" not in buf.getvalue()


# ----------------------------------------------------------------------------- finding 12
def test_gradcheck_prints_a_verdict(capsys):
    assert main(["gradcheck", "--sizes", "4,3,2"]) == 0
    assert re.fullmatch(r"passed: max relative error \S+ is within --tol 1e-06", capsys.readouterr().out.splitlines()[-1])
    assert main(["gradcheck", "--sizes", "4,3,2", "--tol", "1e-30"]) == 1
    assert "FAILED: max relative error" in capsys.readouterr().err


# ----------------------------------------------------------------------------- findings 8 and 10
def _train(out: Path, *extra) -> int:
    return main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--no-report",
                 "--out", str(out), *extra])


def test_metrics_table_title_lines_column_order_and_whole_progress_line(tmp_path, capsys):
    assert _train(tmp_path / "r", "--validation-fraction", "0.1") == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert lines[0] == "64-8-10 sigmoid/softmax cross_entropy on digits"
    assert lines[1].startswith("split: canonical 1348/449")
    header = next(line for line in lines if "metric" in line)
    assert header.index("test") < header.index("train")  # as in report.md / report.html
    last = cap.err.splitlines()[-1]
    assert "…" not in last and re.search(r"val_acc \d\.\d{4}  \d+:\d\d:\d\d$", last), last


def test_canonical_config_toml_leaves_out_the_unused_test_fraction_and_reproduces(tmp_path):
    from mlplab.runs import resume_config
    from mlplab.serialization import load_model

    assert _train(tmp_path / "a") == 0
    text = (tmp_path / "a" / "config.toml").read_text()
    assert 'split = "canonical"' in text and "test_fraction" not in text
    assert main(["train", "--config", str(tmp_path / "a" / "config.toml"), "--out", str(tmp_path / "b"),
                 "--no-report", "--quiet"]) == 0
    assert (tmp_path / "b" / "config.toml").read_text() == text
    assert resume_config(tmp_path / "a") == resume_config(tmp_path / "b")
    assert resume_config(tmp_path / "a")["data"]["test_fraction"] == 0.3  # the default, as in memory
    pa, pb = (load_model(tmp_path / r / "model.npz") for r in "ab")
    assert pa.preprocessing["split"] == pb.preprocessing["split"]
    for x, y in zip(pa.net.parameters(), pb.net.parameters()):
        assert np.array_equal(x, y)
    assert _train(tmp_path / "s", "--split", "stratified") == 0  # where it applies it stays
    assert "test_fraction = 0.3" in (tmp_path / "s" / "config.toml").read_text()
