"""The dataset registry: names, folders, digits, info, and the real MNIST when available."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from datahelpers import NAMES, Synthetic, real_mnist_dir

from mlplab.data import Dataset, dataset_info, list_datasets, load_dataset
from mlplab.errors import DataError, DataFormatError


def test_list_datasets():
    assert set(list_datasets()) == {"mnist", "fashion-mnist", "digits"}


def test_unknown_name_lists_valid_ones():
    with pytest.raises(DataError) as e:
        load_dataset("cifar10")
    msg = str(e.value)
    assert "unknown dataset 'cifar10'" in msg and "digits, fashion-mnist, mnist" in msg and "folder" in msg


def test_load_known_dataset_from_data_dir(tmp_path, synth):
    synth.write(tmp_path / "d" / "mnist")
    ds = load_dataset("MNIST", data_dir=tmp_path / "d", download=False)
    assert isinstance(ds, Dataset) and ds.name == "mnist"
    assert ds.X_train.shape == (30, 784) and ds.X_test.shape == (10, 784)
    assert ds.X_train.dtype == np.uint8 and ds.X_train.flags.c_contiguous
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (30,)
    np.testing.assert_array_equal(ds.X_train.reshape(30, 28, 28), synth.arrays["train_images"])
    assert ds.image_shape == (28, 28) and ds.pixel_max == 255 and ds.n_classes == 10
    assert ds.class_names == tuple("0123456789") and ds.verified
    assert ds.sha256["train-images-idx3-ubyte"] == synth.sha["train_images"]
    assert "data dir" in ds.source and str(tmp_path / "d" / "mnist") in ds.source
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "x"  # type: ignore[misc]


def test_fashion_class_names(tmp_path, synth):
    synth.write(tmp_path / "d" / "fashion-mnist")
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "d", download=False)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_load_folder_path_parse_validates_only(tmp_path):
    s = Synthetic(seed=4)
    folder = s.write(tmp_path / "mydata", compress=False)
    ds = load_dataset(str(folder))
    assert ds.name == str(folder) and not ds.verified and ds.source == f"folder {folder}"
    np.testing.assert_array_equal(ds.y_test, s.arrays["test_labels"])
    assert load_dataset(folder).n_train == 30  # a Path works too


def test_folder_matching_known_checksums_is_named_and_verified(tmp_path, synth):
    folder = synth.write(tmp_path / "whatever")
    ds = load_dataset(str(folder))
    assert ds.name == "mnist" and ds.verified


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(str(tmp_path / "absent"))
    s = Synthetic()
    folder = s.write(tmp_path / "f")
    (folder / (NAMES["test_labels"] + ".gz")).unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte"):
        load_dataset(str(folder))


def test_folder_with_swapped_files(tmp_path):
    s = Synthetic()
    folder = s.write(tmp_path / "f")
    a, b = folder / (NAMES["train_images"] + ".gz"), folder / (NAMES["train_labels"] + ".gz")
    a.write_bytes(s.gz["train_labels"])
    b.write_bytes(s.gz["train_images"])
    with pytest.raises(DataFormatError, match="swapped"):
        load_dataset(str(folder))


def test_folder_count_mismatch(tmp_path):
    s = Synthetic()
    folder = s.write(tmp_path / "f")
    other = Synthetic(n_train=31)
    (folder / (NAMES["train_labels"] + ".gz")).write_bytes(other.gz["train_labels"])
    with pytest.raises(DataFormatError, match="30 images but .* 31 labels"):
        load_dataset(str(folder))


def test_digits_offline_deterministic_stratified():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.X_train.shape == (1348, 64) and a.X_test.shape == (449, 64)
    assert a.image_shape == (8, 8) and a.pixel_max == 16 and a.X_train.max() == 16
    assert a.X_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    total = np.bincount(np.concatenate([a.y_train, a.y_test]))
    frac = np.bincount(a.y_test) / total
    assert np.all(np.abs(frac - 0.25) < 0.01)


def test_dataset_info(tmp_path, synth):
    synth.write(tmp_path / "d" / "mnist")
    info = dataset_info("mnist", data_dir=tmp_path / "d")
    assert info["n_train"] == 30 and info["n_test"] == 10 and info["checksums_verified"] is True
    assert info["class_counts"]["train"] == [3] * 10
    assert sum(info["class_counts"]["test"]) == 10
    import json

    json.dumps(info)


def test_dataset_info_does_not_download_by_default(tmp_path, synth, server):
    url = server.serve("m", {})
    with pytest.raises(DataError, match="downloading is disabled"):
        dataset_info("mnist")
    assert server.hits == [] and url


# --------------------------------------------------------------------------- real MNIST
@pytest.fixture(scope="module")
def mnist():
    d = real_mnist_dir()
    t0 = time.perf_counter()
    ds = load_dataset("mnist", data_dir=d, download=False)
    return ds, time.perf_counter() - t0


def test_real_mnist_counts(mnist):
    ds, _ = mnist
    assert ds.n_train == 60000 and ds.n_test == 10000 and ds.n_features == 784
    assert np.bincount(ds.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ds.y_test).sum() == 10000
    assert ds.verified


def test_real_mnist_pixel_statistics(mnist):
    ds, _ = mnist
    counts = np.bincount(ds.X_train.ravel(), minlength=256)  # exact, without a float copy
    v = np.arange(256) / 255.0
    mean = (counts * v).sum() / counts.sum()
    std = np.sqrt((counts * (v - mean) ** 2).sum() / counts.sum())
    assert round(float(mean), 5) == 0.13066
    assert round(float(std), 5) == 0.30811

