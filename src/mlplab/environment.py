"""What a run's numbers depend on: library versions, BLAS and its thread count, the CPU; and
the ``mlplab`` command line that produced it (:func:`command_line`).

The command line is known only inside :func:`mlplab.cli.main`, which records it for the
duration of the command (:func:`recorded_command`); run folders written from the Python API
record ``None`` there, never the argv of whatever process called the library (pytest, a
notebook). Experiment sweeps hand it to their worker processes with each job.
"""

from __future__ import annotations

import os
import platform
import sys
from contextlib import contextmanager
from typing import Any, Iterator


def blas_info() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries loaded, with their thread counts (threadpoolctl); the one
    mlplab's products go through (:data:`mlplab.blas.BACKEND`) has ``"used_by_mlplab": True``.
    Each row names its library file (``library``) and the package that ships it (``package``,
    e.g. ``numpy.libs``, ``scikit_learn.libs``, ``torch``), so two OpenMP rows are told apart
    without recording the machine's paths."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return []
    import mlplab.blas

    owner = "numpy.libs" if mlplab.blas.BACKEND == "numpy" else "scipy.libs"
    keep = ("user_api", "internal_api", "num_threads", "version", "threading_layer", "architecture")
    out = []
    for info in threadpool_info():
        row = {k: info.get(k) for k in keep}
        path = str(info.get("filepath") or "").replace("\\", "/")
        row["library"], row["package"] = _library_names(path)
        if info.get("user_api") == "blas":
            row["used_by_mlplab"] = (f"/{owner}/" in path or (owner == "numpy.libs" and "/numpy/.dylibs/" in path))
        out.append(row)
    return out


def _library_names(path: str) -> tuple[str | None, str | None]:
    """(file name, shipping package) of a loaded library's path: the folder right under
    site-packages (``numpy.libs``, ``torch``), else the file's own folder (a system library)."""
    if not path:
        return None, None
    parts = path.split("/")
    under = [i for i, p in enumerate(parts[:-2]) if p in ("site-packages", "dist-packages")]
    folder = parts[under[-1] + 1] if under else (parts[-2] if len(parts) > 1 else "")
    return parts[-1], folder or None


#: the ``mlplab`` invocation running in this process (see :func:`recorded_command`), else None
_COMMAND: dict[str, Any] | None = None


def command_record(args: list[str], cwd: str | None = None) -> dict[str, Any]:
    """``{"argv": ["mlplab", *args], "cwd": ...}``: a command line as run folders record it.
    ``cwd`` defaults to the current folder (``None`` if it no longer exists)."""
    if cwd is None:
        try:
            cwd = os.getcwd()
        except OSError:
            cwd = None
    return {"argv": ["mlplab", *(str(a) for a in args)], "cwd": cwd}


def command_line() -> dict[str, Any] | None:
    """The ``mlplab`` command line running in this process, as :func:`command_record` gives it,
    or ``None`` outside one (the library called from Python)."""
    return None if _COMMAND is None else {"argv": list(_COMMAND["argv"]), "cwd": _COMMAND["cwd"]}


@contextmanager
def recorded_command(command: dict[str, Any] | None) -> Iterator[None]:
    """Inside the block, :func:`command_line` is ``command`` (a :func:`command_record`, or
    ``None`` for "not started from the command line"); the previous value comes back after."""
    global _COMMAND
    before = _COMMAND
    _COMMAND = None if command is None else {"argv": list(command["argv"]), "cwd": command.get("cwd")}
    try:
        yield
    finally:
        _COMMAND = before


def environment_info() -> dict[str, Any]:
    """A JSON-able description of the machine and libraries, stored as ``environment.json``;
    ``command`` is the ``mlplab`` command line that wrote it (:func:`command_line`: argv and
    working folder), ``None`` when the library was called from Python."""
    import numpy

    versions: dict[str, str | None] = {"python": platform.python_version(), "numpy": numpy.__version__}
    for name in ("sklearn", "scipy", "matplotlib"):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = __import__(name)
            except ImportError:
                mod = None
        versions[name] = getattr(mod, "__version__", None) if mod is not None else None
    # torch is never imported here (seconds, and its own thread pools): the installed version,
    # and whether this process loaded it (only then did its code run)
    torch = sys.modules.get("torch")
    versions["torch"] = getattr(torch, "__version__", None) if torch is not None else installed_version("torch")
    from mlplab import __version__

    versions["mlplab"] = __version__
    return {
        "versions": versions,
        "torch_loaded": torch is not None,
        "blas": blas_info(),
        "mlplab_blas": _mlplab_blas(),
        "cpu": {
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "logical_cores": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "platform": platform.platform(),
        "thread_env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if os.environ.get(k) is not None
        },
        "command": command_line(),
    }


_INSTALLED: dict[str, str | None] = {}


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` from its metadata, without importing it
    (``None``: not installed); looked up once per process."""
    if dist not in _INSTALLED:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _INSTALLED[dist] = version(dist)
        except PackageNotFoundError:
            _INSTALLED[dist] = None
    return _INSTALLED[dist]


def _mlplab_blas() -> str:
    import mlplab.blas

    return mlplab.blas.BACKEND


@contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS to ``n`` threads inside the block (no-op for ``None``)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    import mlplab.blas  # noqa: F401  threadpoolctl limits only the libraries already loaded

    with threadpool_limits(limits=int(n), user_api="blas"):
        yield
