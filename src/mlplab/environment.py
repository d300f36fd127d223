"""What a run's numbers depend on: library versions, BLAS and its thread count, the CPU."""

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


def environment_info() -> dict[str, Any]:
    """A JSON-able description of the machine and libraries, stored as ``environment.json``."""
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
