"""Cells, grids, the cell cache, and running cells serially or in worker processes.

A *cell* is one unit of work: a function (``kind``, ``"module:function"`` under
:mod:`mlplab.experiments.protocols`) applied to a fully resolved, JSON-able ``config``. Its
identity is the SHA-256 of ``{kind, config}`` (:attr:`Cell.key`), so

* a finished cell (its folder holds ``cell.json`` with the same key) is never retrained;
* an interrupted sweep resumes: unfinished cells are redone from scratch, finished ones load;
* every cell runs with BLAS pinned to one thread (threadpoolctl, inside the worker), and
  PyTorch to one thread, whether serial or in a :class:`~concurrent.futures.ProcessPoolExecutor`,
  so serial and parallel runs give bit-identical results.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import itertools
import json
import math
import re
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlplab.errors import ConfigError, MlplabError
from mlplab.io import atomic_write_json

CELL_FILE = "cell.json"
CACHE_VERSION = 1


@dataclass
class Cell:
    """One unit of work. ``group`` names the cells that differ only by ``seed``."""

    name: str
    kind: str
    config: dict[str, Any]
    group: str = ""
    seed: int = 0
    tags: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.group:
            self.group = self.name

    @property
    def key(self) -> str:
        return config_hash(self.kind, self.config)

    @property
    def folder_name(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", self.name).strip("_")[:80] or "cell"
        return f"{slug}-{self.key[:12]}"


def config_hash(kind: str, config: dict[str, Any]) -> str:
    text = json.dumps({"v": CACHE_VERSION, "kind": kind, "config": config}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class CellResult:
    cell: Cell
    folder: Path
    result: dict[str, Any]
    cached: bool
    wall_s: float


# ----------------------------------------------------------------------------- grids


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    node = config
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = copy.deepcopy(value)


def get_path(config: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = config
    for p in path.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def grid(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the sweep axes (``{}`` gives one empty assignment)."""
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def label(assignment: dict[str, Any]) -> str:
    return ",".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in assignment.items())


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return str(v.get("name", "table"))
    return str(v)


def with_seeds(cells: list[Cell], seeds: int, seed_path: str = "seed") -> list[Cell]:
    """Repeat every cell with ``seeds`` seeds: base seed, base + 1, ... (``seed_path`` in config)."""
    if seeds <= 1:
        return cells
    out = []
    for c in cells:
        base = int(get_path(c.config, seed_path, c.seed) or 0)
        for i in range(seeds):
            cfg = copy.deepcopy(c.config)
            set_path(cfg, seed_path, base + i)
            out.append(Cell(name=f"{c.name}/seed={base + i}", kind=c.kind, config=cfg, group=c.group,
                            seed=base + i, tags=dict(c.tags)))
    return out


# ----------------------------------------------------------------------------- execution


def resolve_kind(kind: str) -> Callable[[dict[str, Any], Path], dict[str, Any]]:
    module_name, _, func = kind.partition(":")
    if not func:
        raise ConfigError(f"cell kind {kind!r} must be 'module:function'")
    module = importlib.import_module(f"mlplab.experiments.protocols.{module_name}")
    try:
        return getattr(module, func)
    except AttributeError:
        raise ConfigError(f"cell kind {kind!r}: no function {func!r} in {module.__name__}") from None


def execute_cell(kind: str, config: dict[str, Any], folder: str, key: str, threads: int = 1) -> dict[str, Any]:
    """Run one cell in this process with BLAS (and torch) pinned to ``threads`` threads.

    The cell's folder is emptied first (a previous attempt may have been interrupted);
    ``cell.json`` is written last, atomically, which is what marks the cell finished.
    """
    from threadpoolctl import threadpool_limits

    out = Path(folder)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    fn = resolve_kind(kind)
    t0 = time.perf_counter()
    with threadpool_limits(limits=int(threads)):
        _pin_torch(threads)
        result = fn(copy.deepcopy(config), out)
    wall = time.perf_counter() - t0
    atomic_write_json(out / CELL_FILE, {"key": key, "kind": kind, "config": config, "result": result,
                                        "wall_s": wall})
    return {"result": result, "wall_s": wall}


def _pin_torch(threads: int) -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(threads))


def _worker(kind: str, config: dict[str, Any], folder: str, key: str, threads: int) -> dict[str, Any]:
    try:
        return execute_cell(kind, config, folder, key, threads)
    except MlplabError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    except Exception:  # a bug: carry the traceback across the process boundary
        return {"error": traceback.format_exc()}


def load_cached(cell: Cell, folder: Path) -> dict[str, Any] | None:
    path = folder / CELL_FILE
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if saved.get("key") != cell.key:
        return None
    return saved


class CellFailed(MlplabError):
    """A cell raised; the message names the cell and its folder."""


def run_cells(cells: list[Cell], cells_dir: str | Path, jobs: int = 1, threads: int = 1,
              progress: Callable[[dict[str, Any]], None] | None = None,
              backend: str = "process") -> list[CellResult]:
    """Run (or load from the cache) every cell; results in the order of ``cells``.

    ``jobs`` > 1 runs cells in that many worker processes (``spawn``ed, so no BLAS state is
    inherited); ``backend`` "ray" or "dask" hands the same function to a cluster.
    """
    cells_dir = Path(cells_dir)
    cells_dir.mkdir(parents=True, exist_ok=True)
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        dup = [c.name for c in cells if keys.count(c.key) > 1]
        raise ConfigError(f"two cells have the same resolved config: {', '.join(dup)}")
    emit = progress or (lambda event: None)
    results: dict[int, CellResult] = {}
    todo: list[int] = []
    for i, c in enumerate(cells):
        folder = cells_dir / c.folder_name
        saved = load_cached(c, folder)
        if saved is not None:
            results[i] = CellResult(c, folder, saved["result"], True, float(saved.get("wall_s", 0.0)))
            emit({"event": "cell_done", "name": c.name, "cached": True, "wall_s": results[i].wall_s,
                  "index": i, "total": len(cells)})
        else:
            todo.append(i)
    emit({"event": "start", "total": len(cells), "todo": len(todo)})

    def finish(i: int, payload: dict[str, Any]) -> None:
        c = cells[i]
        folder = cells_dir / c.folder_name
        if "error" in payload:
            raise CellFailed(f"cell {c.name!r} failed (folder {folder}): {payload['error'].strip()}")
        results[i] = CellResult(c, folder, payload["result"], False, payload["wall_s"])
        emit({"event": "cell_done", "name": c.name, "cached": False, "wall_s": payload["wall_s"],
              "index": i, "total": len(cells)})

    args = {i: (cells[i].kind, cells[i].config, str(cells_dir / cells[i].folder_name), cells[i].key, threads)
            for i in todo}
    if backend in ("ray", "dask"):
        from mlplab.experiments.cluster import run_on_cluster

        for i, payload in run_on_cluster(backend, _worker, [args[i] for i in todo], jobs, emit,
                                         [cells[i].name for i in todo], todo):
            finish(i, payload)
    elif jobs <= 1 or len(todo) <= 1:
        for i in todo:
            emit({"event": "cell_start", "name": cells[i].name, "index": i})
            finish(i, _worker(*args[i]))
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx) as pool:
            pending = {}
            for i in todo:
                pending[pool.submit(_worker, *args[i])] = i
                emit({"event": "cell_start", "name": cells[i].name, "index": i})
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        finish(pending.pop(fut), fut.result())
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    return [results[i] for i in range(len(cells))]


# ----------------------------------------------------------------------------- seeds


def mean_sd(values: list[Any]) -> dict[str, Any] | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))]
    if not vals:
        return None
    n = len(vals)
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "n": n}


def aggregate(results: list[CellResult]) -> dict[str, dict[str, Any]]:
    """Per group (cells differing only by seed): mean and sample sd of every numeric top-level result."""
    groups: dict[str, list[CellResult]] = {}
    for r in results:
        groups.setdefault(r.cell.group, []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for g, rs in groups.items():
        keys = [k for k, v in rs[0].result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[g] = {"n_seeds": len(rs), "seeds": [r.cell.seed for r in rs],
                  "metrics": {k: mean_sd([r.result.get(k) for r in rs]) for k in keys}}
    return out
