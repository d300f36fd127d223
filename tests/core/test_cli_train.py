"""The train / evaluate / predict / gradcheck commands, invoked in-process."""

import json

import numpy as np
import pytest

from mlplab.cli import main


def _train(tmp_path, *extra):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--hidden", "32", "--hidden-activation", "relu",
                 "--init", "he", "--optimizer", "adam", "--lr", "0.01", "--epochs", "15",
                 "--batch-size", "64", "--quiet", "--out", str(out), *extra])
    return code, out


def test_train_writes_a_complete_run_folder(tmp_path, capsys):
    code, out = _train(tmp_path)
    assert code == 0
    for name in ("config.toml", "history.csv", "metrics.json", "model.npz", "environment.json",
                 "predictions.npz", "report.md", "report.html"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.9
    assert 0.9 < metrics["test"]["roc_auc_ovr_macro"] <= 1.0
    assert metrics["accuracy"] == metrics["test"]["accuracy"]
    assert len((out / "history.csv").read_text().splitlines()) == 16
    assert list((out / "figures").glob("*.png"))
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "ROC AUC" in printed


def test_train_is_reproducible(tmp_path):
    _, a = _train(tmp_path / "a", "--no-report")
    _, b = _train(tmp_path / "b", "--no-report")
    ma, mb = np.load(a / "model.npz"), np.load(b / "model.npz")
    for key in ma.files:
        if key.startswith("param/"):
            assert np.array_equal(ma[key], mb[key])
    ha = (a / "history.csv").read_text().splitlines()
    hb = (b / "history.csv").read_text().splitlines()
    strip = lambda lines: [",".join(line.split(",")[:-1]) for line in lines]  # drop wall time
    assert strip(ha) == strip(hb)


def test_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\ndataset = "digits"\n[model]\nhidden = [16]\n[training]\nepochs = 3\nlr = 0.5\n')
    out = tmp_path / "r"
    assert main(["train", "-c", str(cfg), "--epochs", "2", "--quiet", "--no-report", "--out", str(out)]) == 0
    text = (out / "config.toml").read_text()
    import tomllib

    cfg_back = tomllib.loads(text)
    assert cfg_back["training"]["epochs"] == 2 and cfg_back["model"]["hidden"] == [16]
    assert cfg_back["training"]["lr"] == 0.5


@pytest.mark.parametrize("args,needle", [
    (["--lr", "-1"], "training.lr"),
    (["--epochs", "0"], "training.epochs"),
    (["--hidden", "0"], "--hidden"),
    (["--optimizer", "nope"], "optimizer"),
    (["--dataset", "nope"], "nope"),
    (["--batch-size", "5000"], "batch size"),
    (["--loss", "cross_entropy", "--output-activation", "sigmoid"], "softmax"),
])
def test_bad_options_get_one_line_errors(tmp_path, capsys, args, needle):
    out = tmp_path / "bad"
    code = main(["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert not (out / "metrics.json").exists()


def test_bad_config_file(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[training]\nepochs = 'ten'\n")
    assert main(["train", "-c", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert str(cfg) in capsys.readouterr().err
    cfg.write_text("[training]\nbogus = 1\n")
    assert main(["train", "-c", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "bogus" in capsys.readouterr().err
    cfg.write_bytes(b"\xff\xfe[")
    assert main(["train", "-c", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_evaluate_and_predict(tmp_path, capsys):
    code, out = _train(tmp_path, "--no-report")
    assert code == 0
    ev = tmp_path / "eval"
    assert main(["evaluate", str(out / "model.npz"), "--dataset", "digits", "--out", str(ev), "--no-report"]) == 0
    m1 = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    m2 = json.loads((ev / "metrics.json").read_text())["test"]["accuracy"]
    assert m1 == m2
    # a picture of a digit from the test set, drawn dark on light like a user's own
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    img = (255 - d.images[0] * 255 / 16).astype(np.uint8)
    Image.fromarray(img).resize((64, 64), Image.NEAREST).save(tmp_path / "digit.png")
    capsys.readouterr()
    assert main(["predict", str(out / "model.npz"), str(tmp_path / "digit.png")]) == 0
    assert "digit.png:" in capsys.readouterr().out
    assert main(["predict", str(out / "model.npz"), str(tmp_path / "missing.png")]) == 2


def test_evaluate_rejects_wrong_input_dimensions(tmp_path, capsys, mnist_dir):
    code, out = _train(tmp_path, "--no-report")
    assert main(["evaluate", str(out / "model.npz"), "--dataset", "mnist", "--data-dir", str(mnist_dir),
                 "--out", str(tmp_path / "e")]) == 2
    assert "64 input features" in capsys.readouterr().err


def test_gradcheck_command(capsys):
    assert main(["gradcheck", "--sizes", "6,5,4,3", "--hidden-activation", "tanh"]) == 0
    out = capsys.readouterr().out
    assert "max relative error" in out
    assert "paths: backward" in out and "bound step" in out and "fused SGD step" in out
    err = float([line for line in out.splitlines() if " entries, " in line][-1].rsplit(" ", 1)[1])
    assert err < 1e-6


def test_gradcheck_command_fails_with_exit_code_1_above_the_tolerance(capsys):
    assert main(["gradcheck", "--sizes", "6,5,4,3", "--tol", "1e-30"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_hidden_sizes_accept_the_reports_dash_notation():
    from mlplab.cli_train import _parse_sizes

    assert _parse_sizes("500-500") == [500, 500] == _parse_sizes(" 500, 500 ")
    assert _parse_sizes("none") == [] == _parse_sizes("[]")


def test_evaluate_defaults_to_the_split_the_model_was_trained_on(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--split", "stratified", "--test-fraction", "0.25",
                 "--split-seed", "7", "--hidden", "16", "--epochs", "3", "--quiet", "--no-report",
                 "--out", str(out)]) == 0
    trained = json.loads((out / "metrics.json").read_text())
    ev = tmp_path / "eval"
    assert main(["evaluate", str(out / "model.npz"), "--dataset", "digits", "--out", str(ev), "--no-report"]) == 0
    again = json.loads((ev / "metrics.json").read_text())
    assert again["split"] == trained["split"] and "stratified" in again["split"]
    assert again["test"]["accuracy"] == trained["test"]["accuracy"]
    canonical = tmp_path / "canonical"
    assert main(["evaluate", str(out / "model.npz"), "--dataset", "digits", "--split", "canonical",
                 "--out", str(canonical), "--no-report"]) == 0
    assert "canonical" in json.loads((canonical / "metrics.json").read_text())["split"]


def test_predict_refuses_a_decompression_bomb_in_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image

    code, out = _train(tmp_path, "--no-report", "--epochs", "1")
    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4,096 pixels is then a "bomb"
    capsys.readouterr()
    assert main(["predict", str(out / "model.npz"), str(tmp_path / "big.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "big.png" in err and len(err.splitlines()) == 1


def test_a_model_file_without_preprocessing_gets_a_warning(tmp_path, capsys):
    from PIL import Image

    from mlplab.network import MLP
    from mlplab.serialization import save_model

    save_model(tmp_path / "m.npz", MLP([64, 8, 10], "relu", "softmax", "cross_entropy"))
    im = Image.new("L", (8, 8))  # a stroke: a blank picture is refused ("no digit found")
    im.paste(255, (3, 1, 5, 7))
    im.save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "x.png")]) == 0
    assert "records no input scaling" in capsys.readouterr().err


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_gradcheck_command_keeps_relu_pre_activations_off_the_kink(activation):
    # seed 0 of 4,5,3 put a pre-activation 2.7e-4 from 0, inside the finite-difference stencil
    for seed in range(5):
        assert main(["gradcheck", "--sizes", "4,5,3", "--hidden-activation", activation, "--seed", str(seed)]) == 0


@pytest.mark.parametrize("kind, data_extra", [("stratified", ""), ("sklearn", ""),
                                              ("sklearn", "max_test_samples = 120\nmax_train_samples = 500\n")])
def test_evaluate_rebuilds_the_split_of_an_experiment_cell(tmp_path, capsys, kind, data_extra):
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "cell-split"\nrunner = "generic"\n[data]\ndataset = "digits"\n{data_extra}'
                    f'[split]\nkind = "{kind}"\ntest_fraction = 0.25\nseed = 5\n'
                    '[model]\nhidden = [16]\n[training]\nepochs = 3\n')
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "ex")]) == 0
    (cell,) = (tmp_path / "ex" / "cells").iterdir()
    capsys.readouterr()
    assert main(["evaluate", str(cell / "model.npz"), "--dataset", "digits", "--out", str(tmp_path / "ev"),
                 "--no-report"]) == 0
    assert "warning" not in capsys.readouterr().err
    a = json.loads((cell / "metrics.json").read_text())["test"]
    b = json.loads((tmp_path / "ev" / "metrics.json").read_text())["test"]
    # 1,797 digits: 449 test rows by rounding, scikit-learn's ceil gives 450
    assert a["n_samples"] == b["n_samples"] == (120 if data_extra else 449 if kind == "stratified" else 450)
    assert a["accuracy"] == b["accuracy"] and a["confusion_matrix"] == b["confusion_matrix"]
    a, b = (json.loads((d / "metrics.json").read_text())["train"] for d in (cell, tmp_path / "ev"))
    assert a["n_samples"] == b["n_samples"] == (500 if data_extra else 1797 - 449 if kind == "stratified" else 1347)
    assert a["accuracy"] == b["accuracy"]


def test_train_on_scikit_learns_split_tests_on_its_rows_and_evaluate_rebuilds_it(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--split", "sklearn", "--test-fraction", "0.3", "--split-seed", "9",
                 "--max-test-samples", "200", "--hidden", "16", "--epochs", "3", "--quiet", "--no-report",
                 "--out", str(out)]) == 0
    trained = json.loads((out / "metrics.json").read_text())
    assert "train_test_split" in trained["split"] and "test subset of 200" in trained["split"]
    assert trained["test"]["n_samples"] == 200
    ev = tmp_path / "ev"
    assert main(["evaluate", str(out / "model.npz"), "--dataset", "digits", "--out", str(ev), "--no-report"]) == 0
    again = json.loads((ev / "metrics.json").read_text())
    assert again["split"] == trained["split"] and again["test"]["accuracy"] == trained["test"]["accuracy"]
    whole = tmp_path / "whole"  # another split than the model's: no subset unless asked
    assert main(["evaluate", str(out / "model.npz"), "--dataset", "digits", "--split-seed", "1", "--out", str(whole),
                 "--no-report"]) == 0
    assert json.loads((whole / "metrics.json").read_text())["test"]["n_samples"] == 540


def test_evaluate_on_a_folder_holding_mnist_uses_the_recorded_split(tmp_path, mnist_dir):
    link = tmp_path / "mymnist"
    link.symlink_to(mnist_dir / "mnist")
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(link), "--split", "stratified", "--split-seed", "4",
                 "--max-train-samples", "1000", "--hidden", "8", "--epochs", "1", "--quiet", "--no-report",
                 "--out", str(out)]) == 0
    ev = tmp_path / "ev"
    assert main(["evaluate", str(out / "model.npz"), "--dataset", str(link), "--out", str(ev), "--no-report"]) == 0
    a = json.loads((out / "metrics.json").read_text())
    b = json.loads((ev / "metrics.json").read_text())
    assert "stratified" in b["split"] and b["test"]["accuracy"] == a["test"]["accuracy"]


def test_the_sklearn_split_is_scikit_learns_train_test_split_over_all_samples():
    from sklearn.model_selection import train_test_split

    from mlplab.data import load_dataset, splits
    from mlplab.runs import load_config, prepare_data

    cfg = load_config(None, {"data": {"dataset": "digits", "split": "sklearn", "test_fraction": 0.3,
                                      "split_seed": 9, "scaling": "none"}})
    data = prepare_data(cfg)
    X_all, y_all = splits.all_samples(load_dataset("digits"))
    X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.3, random_state=9, stratify=y_all)
    assert np.array_equal(data.test_images, X_te) and np.array_equal(data.y_test, y_te)
    assert np.array_equal(data.y_train, y_tr)
    assert data.split == {"kind": "sklearn", "test_fraction": 0.3, "split_seed": 9}


def test_evaluate_uses_the_models_dataset_and_its_training_rows(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--split", "stratified", "--max-train-samples", "600",
                 "--validation-fraction", "0.2", "--hidden", "16", "--epochs", "3", "--quiet", "--no-report",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    ev = tmp_path / "ev"  # no --dataset: the model's (it used to be mnist, whatever the model)
    assert main(["evaluate", str(out / "model.npz"), "--out", str(ev), "--no-report"]) == 0
    assert "warning" not in capsys.readouterr().err
    a = json.loads((out / "metrics.json").read_text())
    b = json.loads((ev / "metrics.json").read_text())
    assert b["dataset"] == "digits" and b["test"]["accuracy"] == a["test"]["accuracy"]
    # the train column is the rows the model trained on: the 600-row subset less its validation part
    assert b["train"]["n_samples"] == a["train"]["n_samples"] == 480
    assert b["train"]["accuracy"] == a["train"]["accuracy"]


def test_evaluate_warns_when_the_test_rows_may_be_training_rows(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--split", "stratified", "--hidden", "8", "--epochs", "1",
                 "--quiet", "--no-report", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.npz"), "--split-seed", "7", "--out", str(tmp_path / "ev"),
                 "--no-report"]) == 0
    assert "was trained on another split" in capsys.readouterr().err
    assert main(["evaluate", str(out / "model.npz"), "--split-seed", "-5", "--out", str(tmp_path / "ev2")]) == 2
    assert capsys.readouterr().err.strip() == "mlplab: error: --split-seed -5: must be >= 0"


def test_evaluate_of_a_folder_trained_model_needs_the_folder(tmp_path, capsys, mnist_dir):
    link = tmp_path / "mine"
    link.symlink_to(mnist_dir / "mnist")
    from mlplab.network import MLP
    from mlplab.serialization import save_model

    save_model(tmp_path / "m.npz", MLP([784, 4, 10]), preprocessing={"dataset": "invmnist"})
    assert main(["evaluate", str(tmp_path / "m.npz"), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "trained on dataset 'invmnist'" in err and "--dataset" in err and not (tmp_path / "ev").exists()


def test_a_failed_report_says_the_results_are_kept(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "1", "--quiet", "--no-report",
                 "--out", str(out)]) == 0
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "figures").write_text("a file where the figures folder goes")
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.npz"), "--out", str(ev)]) == 2
    err = capsys.readouterr().err
    assert f"the results are saved in {ev}" in err and f"mlplab report {ev}" in err and len(err.splitlines()) == 1
    assert (ev / "metrics.json").exists()


def test_compare_warns_only_when_the_test_rows_differ(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "cmp"\nrunner = "generic"\n[data]\ndataset = "digits"\nmax_train_samples = 600\n'
                    'max_test_samples = 200\n[split]\nkind = "canonical"\nseed = 7\n'
                    '[model]\nhidden = [8]\n[training]\nepochs = 2\n')
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "ex")]) == 0
    (cell,) = (tmp_path / "ex" / "cells").iterdir()
    assert main(["evaluate", str(cell / "model.npz"), "--out", str(tmp_path / "own"), "--no-report"]) == 0
    capsys.readouterr()
    assert main(["compare", str(cell), str(tmp_path / "own"), "--out", str(tmp_path / "c1")]) == 0
    assert "warning" not in capsys.readouterr().err  # a cell and its own evaluation: the same rows
    # another seed draws other subsets of the canonical split: warned, and the rows really differ
    assert main(["evaluate", str(cell / "model.npz"), "--split-seed", "8", "--out", str(tmp_path / "other"),
                 "--no-report"]) == 0
    assert "trained on another split" in capsys.readouterr().err
    assert main(["compare", str(cell), str(tmp_path / "other"), "--out", str(tmp_path / "c2")]) == 0
    assert "different test sets" in capsys.readouterr().err


def test_main_registers_the_commands_once_however_often_it_is_called(capsys):
    from mlplab import cli

    for _ in range(3):
        assert main(["data", "list"]) == 0
    names = [c.name or c.callback.__name__ for c in cli.app.registered_commands]
    assert len(names) == len(set(names))  # every call used to add another copy of every command
