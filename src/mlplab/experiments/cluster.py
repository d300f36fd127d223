"""Run sweep cells on a Ray or Dask cluster (optional extras; not installed by default).

The same cell function runs on the workers (BLAS pinned to one thread inside it), so results
equal the serial and process-pool runs. ``MLPLAB_RAY_ADDRESS`` / ``MLPLAB_DASK_SCHEDULER`` name
an existing cluster; without them a single-machine cluster with ``jobs`` workers is started.
Every worker must see the same output folder (a shared file system) and the data.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

from mlplab.errors import ConfigError


def check_backend(backend: str) -> None:
    """The backend's library is installed (checked before an experiment writes anything)."""
    import importlib.util

    needs = {"dask": ("dask.distributed", "dask[distributed]"), "ray": ("ray", "ray")}
    if backend in needs:
        module, extra = needs[backend]
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # the parent package (dask) is missing
            found = False
        if not found:
            raise ConfigError(f"--backend {backend} needs the optional extra: pip install '{extra}'")


def run_on_cluster(backend: str, worker: Callable[..., dict[str, Any]], args: list[tuple], jobs: int,
                   emit: Callable[[dict[str, Any]], None], names: list[str],
                   indices: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    if backend == "dask":
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise ConfigError("--backend dask needs the optional extra: pip install 'dask[distributed]'") from None
        address = os.environ.get("MLPLAB_DASK_SCHEDULER")
        cluster = None if address else LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True)
        client = Client(address or cluster)
        try:
            futures = {}
            for i, a, name in zip(indices, args, names):
                futures[client.submit(worker, *a, pure=False)] = i
                emit({"event": "cell_start", "name": name, "index": i})
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs the optional extra: pip install 'ray'") from None
        ray.init(address=os.environ.get("MLPLAB_RAY_ADDRESS"), num_cpus=None if os.environ.get("MLPLAB_RAY_ADDRESS")
                 else max(1, jobs), ignore_reinit_error=True)
        remote = ray.remote(num_cpus=1)(worker)
        refs = {}
        for i, a, name in zip(indices, args, names):
            refs[remote.remote(*a)] = i
            emit({"event": "cell_start", "name": name, "index": i})
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield refs[done[0]], ray.get(done[0])
        return
    raise ConfigError(f"unknown backend {backend!r}; valid: process, ray, dask")
