"""Atomic file writing: a temporary file in the same folder, fsync, then rename.

A process killed at any moment leaves either the previous file or the new one, never a
half-written file. Readers never see a partial write.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def printable(text: str | os.PathLike) -> str:
    """``text`` (or a path) with each byte of a file name that is not UTF-8 written as a ``\\xff``
    escape: such bytes come from the file system as lone surrogates (``os.fsdecode``), which no
    UTF-8 file, terminal or figure can hold. Names in reports, tables and messages pass through here."""
    text = os.fspath(text)
    return "".join(_escape(c) if "\ud800" <= c <= "\udfff" else c for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _printable_errors(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return printable(exc.object[exc.start:exc.end]), exc.end


# Text files are written with this error handler, so a name that slipped through unescaped is
# written as printable() shows it instead of failing half-way through a run folder.
codecs.register_error("mlplab.printable", _printable_errors)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    if path.is_dir():  # else the error would name the temporary file
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    make_parent_dirs(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a read-only folder, say: the error names the file, not a temporary name
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file ordinary permissions
        text = {} if "b" in mode else {"encoding": "utf-8", "errors": "mlplab.printable"}
        with os.fdopen(fd, mode, **text) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def blocking_file(path: Path, *, include_self: bool = False) -> Path | None:
    """The first of ``path``'s parents (and ``path`` itself if ``include_self``) that exists and is
    not a folder: what makes a folder at ``path`` impossible. ``None`` if there is none."""
    candidates = (*reversed(path.parents), path) if include_self else reversed(path.parents)
    return next((p for p in candidates if p.exists() and not p.is_dir()), None)


def make_parent_dirs(path: Path) -> None:
    """Create ``path``'s missing parent folders; a parent that is a file is named as such
    (``mkdir`` would say "File exists", which reads like a refusal to overwrite)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = blocking_file(path) or path.parent
        raise NotADirectoryError(errno.ENOTDIR, f"{blocking} is a file, not a folder", str(path)) from None


def check_file_target(path: Path, option: str) -> None:
    """Refuse, before any work, a file target that cannot be written: a folder, or a path under a file."""
    from mlplab.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    blocking = blocking_file(path)
    if blocking is not None:
        raise ConfigError(f"{option} {path}: {blocking} is a file, not a folder")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), "wb")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text), "w")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for the same content)."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
