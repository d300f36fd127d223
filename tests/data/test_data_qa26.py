"""Docs audit qa26: a run on a folder dataset given by a relative path records the folder by its
absolute path in config.toml too, so the run resumes (or is re-run from its config) anywhere."""

from __future__ import annotations

import tomllib

import numpy as np
from datahelpers import Synthetic, real_mnist_dir

from mlplab.serialization import load_model


def _cli(capsys, *args: str) -> tuple[int, str]:
    from mlplab.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_a_relative_folder_dataset_is_recorded_absolute(tmp_path, capsys, monkeypatch):
    Synthetic(seed=2).write(tmp_path / "work" / "folders" / "sub")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path / "work")
    code, err = _cli(capsys, "train", "--dataset", "folders/sub", "--hidden", "4", "--epochs", "1",
                     "--batch-size", "10", "--quiet", "--no-report", "--out", str(tmp_path / "run"))
    assert code == 0, err
    folder = str(tmp_path / "work" / "folders" / "sub")
    cfg = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert cfg["data"]["dataset"] == folder
    assert load_model(tmp_path / "run" / "model.npz").training["data"]["dataset"] == folder
    # the run's own config reproduces it from another working folder
    monkeypatch.chdir(elsewhere)
    code, err = _cli(capsys, "train", "--config", str(tmp_path / "run" / "config.toml"), "--quiet",
                     "--no-report", "--out", str(tmp_path / "again"))
    assert code == 0, err
    a, b = (load_model(tmp_path / r / "model.npz").net.parameters() for r in ("run", "again"))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_relative_data_dir_is_recorded_absolute(tmp_path, capsys, monkeypatch):
    (tmp_path / "dd").symlink_to(real_mnist_dir(), target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, "train", "--dataset", "mnist", "--data-dir", "dd", "--hidden", "4",
                     "--epochs", "1", "--max-train-samples", "300", "--max-test-samples", "100",
                     "--quiet", "--no-report", "--out", "run")
    assert code == 0, err
    cfg = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert cfg["data"]["dataset"] == "mnist" and cfg["data"]["data_dir"] == str(tmp_path / "dd")
