"""Cells, grids, the cell cache, and running cells serially or in worker processes.

A *cell* is one unit of work: a function (``kind``, ``"module:function"`` under
:mod:`mlplab.experiments.protocols`) applied to a fully resolved, JSON-able ``config``. Its
identity is the SHA-256 of ``{kind, config}`` (:attr:`Cell.key`), so

* a finished cell (its folder holds ``cell.json`` with the same key) is never retrained, even
  under another cell name (``--seeds`` renames cells: the folder is found by its key suffix);
* an interrupted sweep resumes: finished cells load, and an unfinished cell continues from the
  checkpoint it writes every minute or so (:mod:`mlplab.experiments.checkpoint`; cells trained
  by PyTorch or scikit-learn start again);
* ``cell.json`` records the SHA-256 of every result file the finished cell wrote (not the
  report and figures ``mlplab report`` writes again): a cached cell whose files were since
  removed or changed is run again, with a one-line warning naming the file;
* a cached cell's result is checked once, as it loads, against what a finished cell of its kind
  returns (the types of the values the reports read, which each protocol module declares in
  ``RESULTS``: :mod:`mlplab.experiments.shapes`); a cell.json holding another (text where a
  number belongs, a missing key, NaN) is damage: the cell runs again, with a one-line warning
  naming the cell.json and the value, instead of the report failing on it;
* ``cell.json`` records which data the cell read (``data``: per dataset it loaded, the dataset
  and data dir it asked for, the dataset's name and each file's SHA-256, or scikit-learn's
  version for ``digits``): a cached cell is reused only while that data is the data the same
  request reads now (:func:`~mlplab.data.datasets.data_changes`: the same files read from
  elsewhere, or compressed otherwise, are the same data). Cells whose data changed (a folder's
  IDX files were replaced, another scikit-learn) are trained again, with one warning counting
  them per dataset (and :attr:`CellResult.data_changes` saying why, for the summary and the
  report); a dataset that cannot be read now leaves its cells reused, with a warning
  that they were not checked. The current data
  is identified once per run, and only for the datasets cached cells read: ``mnist`` and
  ``fashion-mnist`` by their known checksums (nothing is read), a folder by hashing its files
  once. Cells cached before cell.json recorded their data fall back on their metrics.json's
  ``data``; those that record neither are reused, unchecked, as before. A cell's checkpoint
  records its data too, and is not resumed on other data;
* a cell's run folder records the ``mlplab`` command line that ran it (its environment.json's
  ``command``; ``null`` from the Python API): the sweep hands it to the worker processes with
  each job, so parallel and cluster cells record it as serial ones do;
* every cell runs with BLAS and OpenMP pinned to ``threads`` threads (threadpoolctl, inside the
  worker; the libraries cells use are loaded first, torch's when a cell imports it), and
  PyTorch to as many, whether serial or in a :class:`~concurrent.futures.ProcessPoolExecutor`,
  so serial and parallel runs give bit-identical results; ``cell.json`` records the count;
* cells that name the same ``stack`` (and ``stack_kind``) are trained together in one job as
  one stacked model (:mod:`mlplab.stacked`): the protocol's ``stack_kind`` function takes all
  their configs and folders. Each cell still gets its own folder and cache entry, so a stack
  that was interrupted, or whose cells were partly cached, retrains only its missing cells;
* jobs start longest first (``Cell.cost``), so two workers finish close together.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import itertools
import json
import math
import os
import re
import shutil
import time
import traceback
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlplab.errors import ConfigError, DivergenceError, MlplabError, SweepInterrupted, TrainingInterrupted
from mlplab.io import atomic_write_json

CELL_FILE = "cell.json"
CACHE_VERSION = 1
#: a sweep larger than this is refused before any cell is built (override: this variable)
MAX_CELLS_VAR = "MLPLAB_MAX_CELLS"
MAX_CELLS = 10_000


@dataclass
class Cell:
    """One unit of work. ``group`` names the cells that differ only by ``seed``."""

    name: str
    kind: str
    config: dict[str, Any]
    group: str = ""
    seed: int = 0
    tags: dict[str, Any] = field(default_factory=dict)
    #: ``"module:function"`` that trains several such cells as one stacked model; cells whose
    #: configs are equal but for the ``stack_varies`` paths (see :attr:`stack`) share a job
    stack_kind: str = ""
    stack_varies: tuple[str, ...] = ()
    #: relative amount of work (e.g. multiply-adds); jobs start in decreasing order of cost
    cost: float = 0.0
    #: the config path :func:`with_seeds` set (``""``: the cell was not repeated over seeds)
    seed_path: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            self.group = self.name

    @property
    def key(self) -> str:
        return config_hash(self.kind, self.config)

    @property
    def group_key(self) -> str:
        """The config hash without the seed :func:`with_seeds` varies: cells share it exactly when
        they differ by that seed alone (their display names may coincide otherwise)."""
        return stack_key(self.kind, self.config, (self.seed_path,)) if self.seed_path else self.key

    @property
    def stack(self) -> str:
        """Cells with the same non-empty stack key train together (``""``: this cell trains alone)."""
        if not self.stack_kind:
            return ""
        return f"{self.stack_kind}/{stack_key(self.kind, self.config, self.stack_varies)}"

    @property
    def folder_name(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", self.name).strip("_")[:80] or "cell"
        return f"{slug}-{self.key[:12]}"


def stack_key(kind: str, config: dict[str, Any], varying: tuple[str, ...]) -> str:
    """The hash of ``config`` without the ``varying`` paths: cells with equal keys share their
    data, architecture and training settings, and differ at most in those paths."""
    cfg = copy.deepcopy(config)
    for path in varying:
        node: Any = cfg
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return config_hash(kind, cfg)[:16]


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
    #: why a cached cell was trained again in this run, for the summary and the report: one entry
    #: per dataset it read whose data changed since, ``{"dataset", "data_dir"}`` as the cell asked
    #: for it, ``"files"``: the IDX files whose SHA-256 differs, ``"changes"``: the warning's
    #: phrases; ``[]`` for every other cell
    data_changes: list[dict[str, Any]] = field(default_factory=list)


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
    """A sweep value as a cell name shows it, faithfully: two different values never print alike
    (a float prints with ``:g`` only when that reads back as the same number, else its repr; a
    table prints all its entries, ``{std=0.01}``)."""
    if isinstance(v, float):
        text = f"{v:g}"
        return text if float(text) == v else repr(v)
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}={_short(x)}" for k, x in v.items()) + "}"
    return str(v)


def grid_size(axes: dict[str, list[Any]]) -> int:
    """How many cells :func:`grid` makes (without building them)."""
    return math.prod(len(v) for v in axes.values())


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
                            seed=base + i, tags=dict(c.tags), stack_kind=c.stack_kind,
                            stack_varies=c.stack_varies, cost=c.cost, seed_path=seed_path))
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


def execute_cell(kind: str, config: dict[str, Any], folder: str, key: str, threads: int = 1,
                 command: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one cell in this process with BLAS, OpenMP and torch pinned to ``threads`` threads.
    ``command``: the command line the cell's files record (:func:`mlplab.environment.command_line`
    of the process that planned the sweep); ``None`` keeps this process's.

    The cell's folder is emptied first (a previous attempt may have been interrupted), all but
    the checkpoint that attempt left, from which the cell continues; ``cell.json`` is written
    last, atomically, which is what marks the cell finished.
    """
    out = Path(folder)
    _fresh_folder(out)
    fn = resolve_kind(kind)
    _CELL_DATA.clear()
    t0 = time.perf_counter()
    try:
        with cell_threads(threads), _stopping_cleanly(), _command(command):
            result = fn(copy.deepcopy(config), out)
    except DivergenceError as exc:  # a finished outcome: recorded and cached, the other cells run on
        result = diverged_result(exc)
        _drop_checkpoint(out)
    wall = time.perf_counter() - t0
    atomic_write_json(out / CELL_FILE, {"key": key, "kind": kind, "config": config, "result": result,
                                        "wall_s": wall, "threads": int(threads), "files": file_digests(out),
                                        "data": cell_data(), **_status(result)})
    return {"result": result, "wall_s": wall}


def _command(command: dict[str, Any] | None):
    """The command line the cell's files record, while it runs (``None``: this process's)."""
    from mlplab.environment import recorded_command

    return contextlib.nullcontext() if command is None else recorded_command(command)


def diverged_result(exc: DivergenceError) -> dict[str, Any]:
    """The result of a cell whose training diverged: it has no metrics; ``error`` says why."""
    return {"status": "diverged", "error": f"{type(exc).__name__}: {exc}"}


def diverged(result: dict[str, Any]) -> str | None:
    """The divergence message of a diverged cell's result, else ``None``."""
    return result.get("error") if isinstance(result, dict) and result.get("status") == "diverged" else None


def diverged_models(result: dict[str, Any]) -> tuple[int, int]:
    """``(diverged, of)``: how many of the models a finished cell trained together and recorded
    one by one (its result's ``models``, each a result of its own: ovr-logistic's stacked
    detectors) diverged. One of them can diverge while the others train on, so the cell
    finishes and :func:`diverged` does not count it: the end-of-run counts and the report need
    this too. ``(0, 0)`` for a diverged cell (counted as a cell) and for a cell of one model."""
    if diverged(result) or not isinstance(result, dict) or not isinstance(result.get("models"), list):
        return 0, 0
    models = result["models"]
    return sum(1 for m in models if diverged(m)), len(models)


def _status(result: dict[str, Any]) -> dict[str, Any]:
    return {"status": "diverged"} if diverged(result) else {}


def _drop_checkpoint(out: Path) -> None:
    from mlplab.experiments.checkpoint import CHECKPOINT

    with contextlib.suppress(FileNotFoundError):
        (out / CHECKPOINT).unlink()


#: what ``mlplab report`` writes again in a run folder (views of its results, not results)
REGENERATED = ("report.md", "report.html", "figures")


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every result file under a finished cell's ``folder`` (all but cell.json and
    the :data:`REGENERATED` views), by relative path."""
    return {f.relative_to(folder).as_posix(): _sha256(f) for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != CELL_FILE and f.relative_to(folder).parts[0] not in REGENERATED}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def damaged_file(folder: Path, saved: dict[str, Any]) -> str | None:
    """``"path: what is wrong"`` for the first file of a finished cell's folder that is missing
    or changed since the cell finished, else ``None``. Cells that finished before cell.json
    recorded their files are checked as far as possible: every .json and .npz file must load."""
    import zipfile

    import numpy as np

    files = saved.get("files")
    if isinstance(files, dict):
        for rel, digest in files.items():
            path = folder / rel
            if not path.is_file():
                return f"{path}: missing"
            if _sha256(path) != digest:
                return f"{path}: changed since the cell finished"
        return None
    for path in sorted(folder.rglob("*")):
        try:
            if path.suffix == ".json" and path.name != CELL_FILE:
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    for name in z.files:
                        z[name]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return f"{path}: does not load"
    return None


#: the shape of each cell kind's result (:func:`result_shape`), found once per process
_RESULT_SHAPES: dict[str, Any] = {}


def result_shape(kind: str):
    """What a finished cell of ``kind`` (``"module:function"``) returns, as a
    :mod:`~mlplab.experiments.shapes` shape: the record its protocol module declares in
    ``RESULTS`` for ``function`` with what the runner reads of every result
    (:data:`~mlplab.experiments.shapes.EVERY_RESULT`; that alone for a kind that declares none),
    or a diverged result (its non-empty ``error``)."""
    from mlplab.experiments.shapes import EVERY_RESULT, OrDiverged

    if kind not in _RESULT_SHAPES:
        module_name, _, func = kind.partition(":")
        module = importlib.import_module(f"mlplab.experiments.protocols.{module_name}")
        own = getattr(module, "RESULTS", {}).get(func)
        _RESULT_SHAPES[kind] = OrDiverged(EVERY_RESULT if own is None else EVERY_RESULT.extended(own))
    return _RESULT_SHAPES[kind]


def result_problem(kind: str, result: dict[str, Any]) -> str | None:
    """What is wrong with the cached ``result`` of a cell of ``kind``, as a phrase naming the
    value (``"result.test_accuracy is 'abc', not a finite number"``), else ``None``: the types
    of the values the reports read, as a freshly computed result of that kind holds them
    (:func:`result_shape`). Any non-finite number is wrong too: cell.json is written without."""
    return result_shape(kind).problem(result, "result")


def _fresh_folder(out: Path) -> None:
    """Empty the cell's folder (an earlier attempt may have been interrupted) but keep its
    checkpoint, from which the cell continues (:mod:`mlplab.experiments.checkpoint`)."""
    from mlplab.experiments.checkpoint import CHECKPOINT

    if out.is_dir():
        for child in out.iterdir():
            if child.name == CHECKPOINT and child.is_file():  # (a folder of that name goes)
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    elif out.exists():
        out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    os.utime(out)  # marks the cell started (see _in_flight)


#: set in pool worker processes: an interrupted cell ends the process once it has checkpointed
IN_POOL_WORKER = False


@contextlib.contextmanager
def _stopping_cleanly():
    """A cell whose trainers were asked to stop (Ctrl-C / SIGTERM) writes their checkpoints
    where they stopped, then the worker process ends (in the main process: KeyboardInterrupt)."""
    from mlplab.experiments import checkpoint

    checkpoint.forget_active()
    try:
        yield
    except TrainingInterrupted:
        checkpoint.write_active()
        if IN_POOL_WORKER:
            os._exit(130)
        raise KeyboardInterrupt from None
    finally:
        checkpoint.forget_active()  # a cell that failed inside fit must not look like it is training


def _stop_signal(signum, frame) -> None:
    """Ctrl-C / SIGTERM while a cell runs: training cells stop after the current minibatch and
    checkpoint; anything else stops at once."""
    from mlplab.experiments import checkpoint

    if checkpoint.request_stop():
        return
    if IN_POOL_WORKER:
        os._exit(130)
    raise KeyboardInterrupt


#: BLAS / OpenMP / PyTorch threads of the cell running in this process (``None`` outside a
#: cell); the PyTorch cells import torch only once they start and pin it with
#: :func:`pin_new_libraries`
CELL_THREADS: int | None = None
#: the thread limits applied for the running cell, undone in reverse order when it ends
_CELL_LIMITS: list[Any] = []


def _load_cell_libraries() -> None:
    """Load the thread pools every cell uses before its limit is applied: threadpoolctl limits
    only libraries already loaded, and one a cell loaded first would keep all its threads."""
    import mlplab.blas  # noqa: F401  NumPy's and SciPy's OpenBLAS

    try:
        import sklearn.utils._openmp_helpers  # noqa: F401  scikit-learn's OpenMP runtime (splits, metrics)
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        pass


@contextlib.contextmanager
def cell_threads(threads: int):
    """Pin BLAS, OpenMP and torch to ``threads`` threads while a cell runs (the libraries cells
    use are loaded first), and undo it afterwards: in the serial runner the cell shares the
    caller's process."""
    global CELL_THREADS
    from threadpoolctl import threadpool_limits

    _load_cell_libraries()
    before, depth, CELL_THREADS = CELL_THREADS, len(_CELL_LIMITS), int(threads)
    _CELL_LIMITS.append(threadpool_limits(limits=CELL_THREADS))
    try:
        _pin_torch()
        yield
    finally:
        while len(_CELL_LIMITS) > depth:
            _CELL_LIMITS.pop().restore_original_limits()
        CELL_THREADS = before


def pin_new_libraries() -> None:
    """Inside a cell, limit the thread pools loaded since it started (a library the cell
    imported itself, e.g. torch) to the cell's threads; no-op outside a cell."""
    if CELL_THREADS is None:
        return
    from threadpoolctl import threadpool_limits

    _CELL_LIMITS.append(threadpool_limits(limits=CELL_THREADS))
    _pin_torch()


def _pin_torch() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and CELL_THREADS is not None:
        torch.set_num_threads(CELL_THREADS)


def execute_stack(stack_kind: str, items: list[tuple[str, dict[str, Any], str, str]],
                  threads: int = 1, command: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the cells ``items`` (``(kind, config, folder, key)``) as one stacked job.

    ``stack_kind``'s function gets the configs and folders and returns, per cell, its result
    dict or the :class:`MlplabError` that stopped it. Each finished cell's ``cell.json`` is
    written as :func:`execute_cell` writes it; its ``wall_s`` is its share of the job's time.
    """
    outs = []
    for _, _, folder, _ in items:
        out = Path(folder)
        _fresh_folder(out)
        outs.append(out)
    fn = resolve_kind(stack_kind)
    _CELL_DATA.clear()
    t0 = time.perf_counter()
    with cell_threads(threads), _stopping_cleanly(), _command(command):
        results = fn([copy.deepcopy(cfg) for _, cfg, _, _ in items], outs)
    wall = time.perf_counter() - t0
    payloads = []
    for (kind, config, _, key), out, result in zip(items, outs, results):
        if isinstance(result, DivergenceError):  # recorded and cached, as a lone cell's
            result = diverged_result(result)
            _drop_checkpoint(out)
        if isinstance(result, BaseException):
            payloads.append({"error": f"{type(result).__name__}: {result}"})
            continue
        share = wall / len(items)
        atomic_write_json(out / CELL_FILE, {"key": key, "kind": kind, "config": config, "result": result,
                                            "wall_s": share, "stacked_with": len(items), "stack_wall_s": wall,
                                            "threads": int(threads), "files": file_digests(out),
                                            "data": cell_data(), **_status(result)})
        payloads.append({"result": result, "wall_s": share})
    return payloads


def _stack_worker(stack_kind: str, items: list[tuple[str, dict[str, Any], str, str]],
                  threads: int, command: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    try:
        return execute_stack(stack_kind, items, threads, command)
    except MlplabError as exc:
        return [{"error": f"{type(exc).__name__}: {exc}"}] * len(items)
    except Exception:
        return [{"error": traceback.format_exc()}] * len(items)


def _run_job(job: tuple) -> list[dict[str, Any]]:
    """A job is ``("cell", args)`` or ``("stack", stack_kind, [args...], threads, command)``;
    returns payloads."""
    if job[0] == "cell":
        return [_worker(*job[1])]
    return _stack_worker(*job[1:])


def _worker(kind: str, config: dict[str, Any], folder: str, key: str, threads: int,
            command: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        return execute_cell(kind, config, folder, key, threads, command)
    except MlplabError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    except Exception:  # a bug: carry the traceback across the process boundary
        return {"error": traceback.format_exc()}


# ----------------------------------------------------------------------------- the data a cell read


#: the data the running cell read, by what it asked for: (dataset, data dir) -> :func:`cell_data` entry
_CELL_DATA: dict[tuple[str, str | None], dict[str, Any]] = {}


def note_data(dataset: Any, data_dir: Any, record: dict[str, Any]) -> None:
    """The running cell read ``dataset`` (from ``data_dir``, as its config names them) and got the
    data of ``record`` (:func:`mlplab.data.datasets.data_record`).
    :func:`mlplab.experiments.protocols.common.dataset`, through which cells load their data,
    tells; the cell's cell.json and checkpoints record it (:func:`cell_data`)."""
    from mlplab.data.datasets import data_identity

    key = (str(dataset), None if data_dir is None else str(data_dir))
    _CELL_DATA[key] = {"dataset": key[0], "data_dir": key[1], **(data_identity(record) or {})}


def cell_data() -> list[dict[str, Any]]:
    """The data the running cell has read so far, in the order it first asked: per dataset, the
    ``dataset`` and ``data_dir`` it asked for and the data's :func:`~mlplab.data.datasets.data_identity`
    (``name``, ``files`` or ``sklearn_version``). cell.json's ``data``."""
    return [dict(entry) for entry in _CELL_DATA.values()]


def recorded_data(config: dict[str, Any], folder: Path, saved: dict[str, Any]) -> list[dict[str, Any]]:
    """The data a finished cell read, as :func:`cell_data` entries: its cell.json's ``data``. A
    cell cached before cell.json recorded it falls back on its metrics.json's ``data``, read as
    its config's ``data.dataset`` and ``data.data_dir`` ask (every runner loads its data so);
    ``[]`` when neither records it (cells of older versions: they are reused unchecked)."""
    from mlplab.data.datasets import data_identity

    data = saved.get("data")
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict) and isinstance(d.get("dataset"), str)]
    asked = config.get("data")
    if not isinstance(asked, dict) or not isinstance(asked.get("dataset"), str):
        return []
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    identity = data_identity(metrics.get("data")) if isinstance(metrics, dict) else None
    if identity is None:
        return []
    data_dir = asked.get("data_dir")
    return [{"dataset": asked["dataset"], "data_dir": None if data_dir is None else str(data_dir), **identity}]


class DataNow:
    """The data each (dataset, data dir) request reads now, found once per run
    (:func:`~mlplab.data.datasets.current_data_identity`: known checksums for the fetched
    datasets, a folder's files hashed once), and the cached cells found trained on other data."""

    def __init__(self) -> None:
        self._now: dict[tuple[str, str | None], Any] = {}  # identity, or the error that prevented it
        self.changed: dict[tuple[str, str | None], list[tuple[str, list[str]]]] = {}
        self.unchecked: dict[tuple[str, str | None], list[str]] = {}

    def now(self, dataset: str, data_dir: str | None) -> Any:
        from mlplab.data.datasets import current_data_identity

        key = (dataset, data_dir)
        if key not in self._now:
            try:
                self._now[key] = current_data_identity(dataset, data_dir)
            except (MlplabError, OSError) as exc:
                self._now[key] = exc
        return self._now[key]

    def still_same(self, cell: Cell, recorded: list[dict[str, Any]]) -> bool:
        """``False`` when a dataset the cached ``cell`` read holds other data now (the cell is
        then trained again); a dataset that cannot be read now leaves the cell reused, unchecked."""
        return not self.changes(cell, recorded)

    def changes(self, cell: Cell, recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per dataset the cached ``cell`` read that holds other data now, what changed
        (:attr:`CellResult.data_changes`); ``[]`` when the cell can be reused. A dataset that
        cannot be read now leaves the cell reused, unchecked."""
        from mlplab.data.datasets import changed_files, data_changes

        out = []
        for entry in recorded:
            key = (entry["dataset"], None if entry.get("data_dir") is None else str(entry["data_dir"]))
            now = self.now(*key)
            if isinstance(now, BaseException):
                self.unchecked.setdefault(key, []).append(cell.name)
                continue
            changes = data_changes(entry, now)
            if changes:
                self.changed.setdefault(key, []).append((cell.name, changes))
                out.append({"dataset": key[0], "data_dir": key[1], "files": changed_files(entry, now),
                            "changes": changes})
        return out

    def messages(self) -> list[str]:
        """One warning for the cells trained again because their data changed, one for those
        reused unchecked; ``[]`` when there are none."""
        out = []
        if self.changed:
            parts = []
            for key, cells in self.changed.items():
                changes = cells[0][1]
                more = f" and {len(changes) - 2} more" if len(changes) > 2 else ""
                n = len(cells)
                parts.append(f"{n} cached cell{'s were' if n > 1 else ' was'} trained on other data than dataset "
                             f"{_asked(key)} holds now ({'; '.join(changes[:2])}{more})")
            total = sum(len(v) for v in self.changed.values())
            out.append(f"{'; '.join(parts)}: training {'them' if total > 1 else 'it'} again")
        for key, names in self.unchecked.items():
            error = self._now[key]
            n = len(names)
            out.append(f"cannot read dataset {_asked(key)} now ({error}): {n} cached cell{'s are' if n > 1 else ' is'} "
                       "reused without checking that it holds the data they were trained on")
        return out


def _asked(key: tuple[str, str | None]) -> str:
    dataset, data_dir = key
    return f"{dataset}" + (f" (data dir {data_dir})" if data_dir is not None else "")


def load_cached(cell: Cell, folder: Path, damaged: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The saved entry of ``cell`` finished in ``folder``, or ``None``: not finished there, or its
    result or files are damaged (``damaged(message)`` is told which; the cell then runs again).
    The result is checked here, once, for everything that reads it later (the report builders):
    a result no finished cell of its kind returns (:func:`result_problem`) is damage too."""
    path = folder / CELL_FILE
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != cell.key:
        return None
    wall = saved.get("wall_s", 0.0)
    if not isinstance(saved.get("result"), dict) or isinstance(wall, bool) or not isinstance(wall, (int, float)) \
            or not math.isfinite(wall):
        problem = f"{path}: its result or wall_s is not what a finished cell writes"
    else:
        problem = result_problem(cell.kind, saved["result"])
        problem = f"{path}: {problem}" if problem else damaged_file(folder, saved)
    if problem is not None:
        if damaged is not None:
            damaged(f"cached cell {cell.name!r} is damaged ({problem}); running it again")
        return None
    return saved


def find_cached(cell: Cell, cells_dir: Path,
                damaged: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]] | None:
    """A finished folder of ``cell``'s config under another cell name: the cache is keyed by the
    config hash, and the folder name ends with its first 12 hex digits (``name-key``), so a cell
    renamed by ``--seeds`` (``name/seed=N``) finds the folder its config finished in."""
    own = cells_dir / cell.folder_name
    for folder in sorted(cells_dir.glob(f"*-{cell.key[:12]}")):
        if folder == own or not folder.is_dir():
            continue
        saved = load_cached(cell, folder, damaged)  # the full key must match, not only the suffix
        if saved is not None:
            return folder, saved
    return None


def check_distinct(cells: list[Cell], origin: str = "") -> None:
    """No two cells with the same resolved config (they would share one folder and cache entry)."""
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        dup = [c.name for c in cells if keys.count(c.key) > 1]
        where = f"{origin}: " if origin else ""
        raise ConfigError(f"{where}two cells have the same resolved config: {', '.join(dup)}")


class CellFailed(MlplabError):
    """A cell raised; the message names the cell and its folder."""


def run_cells(cells: list[Cell], cells_dir: str | Path, jobs: int = 1, threads: int = 1,
              progress: Callable[[dict[str, Any]], None] | None = None,
              backend: str = "process") -> list[CellResult]:
    """Run (or load from the cache) every cell; results in the order of ``cells``.

    ``jobs`` > 1 runs cells in that many worker processes (``spawn``ed, so no BLAS state is
    inherited); ``backend`` "ray" or "dask" hands the same function to a cluster.
    """
    check_distinct(cells)
    cells_dir = Path(cells_dir)
    cells_dir.mkdir(parents=True, exist_ok=True)
    emit = progress or (lambda event: None)

    def damaged(message: str) -> None:
        if progress is None:
            warnings.warn(message, stacklevel=3)
        else:
            emit({"event": "warning", "message": message})

    results: dict[int, CellResult] = {}
    todo: list[int] = []
    data_now = DataNow()
    data_changed: dict[int, list[dict[str, Any]]] = {}  # the cells trained again because their data changed
    for i, c in enumerate(cells):
        folder = cells_dir / c.folder_name
        saved = load_cached(c, folder, damaged)
        if saved is None:  # the same config finished under another name (e.g. before --seeds renamed it)
            folder, saved = find_cached(c, cells_dir, damaged) or (folder, None)
        changes = [] if saved is None else data_now.changes(c, recorded_data(c.config, folder, saved))
        if changes:  # trained on other data: train it again (the summary and report say so)
            folder, saved, data_changed[i] = cells_dir / c.folder_name, None, changes
        if saved is not None:
            results[i] = CellResult(c, folder, saved["result"], True, float(saved.get("wall_s", 0.0)))
            emit({"event": "cell_done", "name": c.name, "cached": True, "wall_s": results[i].wall_s,
                  "index": i, "total": len(cells)})
        else:
            todo.append(i)
    for message in data_now.messages():
        damaged(message)
    from mlplab.experiments.protocols.common import forget_changed

    forget_changed(data_now.now)  # data this process loaded before (the Python API) may have changed since
    emit({"event": "start", "total": len(cells), "todo": len(todo)})

    def finish(i: int, payload: dict[str, Any]) -> None:
        c = cells[i]
        folder = cells_dir / c.folder_name
        if "error" in payload:
            raise CellFailed(f"cell {c.name!r} failed (folder {folder}): {payload['error'].strip()}")
        results[i] = CellResult(c, folder, payload["result"], False, payload["wall_s"], data_changed.get(i, []))
        emit({"event": "cell_done", "name": c.name, "cached": False, "wall_s": payload["wall_s"],
              "index": i, "total": len(cells), "diverged": diverged(payload["result"]),
              "diverged_models": diverged_models(payload["result"])})

    from mlplab.environment import command_line

    command = command_line()  # recorded by every cell this run trains, in whichever process
    args = {i: (cells[i].kind, cells[i].config, str(cells_dir / cells[i].folder_name), cells[i].key, threads,
                command) for i in todo}
    jobs_list = plan_jobs(cells, todo)  # lists of cell indices, longest first
    resume = "run the same command again (or --resume on the experiment folder) to resume"
    started = time.time()
    try:
        _execute(cells, jobs_list, args, jobs, threads, backend, emit, finish)
    except KeyboardInterrupt:
        raise SweepInterrupted(
            f"interrupted: {len(results)} of {len(cells)} cells are finished and cached in {cells_dir}; run the "
            "same command again to resume (unfinished cells continue from their last checkpoint)") from None
    except BrokenProcessPool:
        flight = _in_flight(cells, [i for i in todo if i not in results], cells_dir, started)
        raise CellFailed(
            f"a worker process died (killed?) while running {flight}; {len(results)} of {len(cells)} cells are "
            f"finished and cached in {cells_dir}; {resume}") from None
    return [results[i] for i in range(len(cells))]


def _in_flight(cells: list[Cell], unfinished: list[int], cells_dir: Path, since: float) -> str:
    """The unfinished cells that had started in this run (their folder was emptied since
    ``since``: :func:`_fresh_folder` stamps it), for the message of a worker that died."""
    names = []
    for i in unfinished:
        with contextlib.suppress(OSError):
            if os.stat(cells_dir / cells[i].folder_name).st_mtime >= since - 0.01:
                names.append(repr(cells[i].name))
    if not names:
        return "one of the unfinished cells"
    more = f" and {len(names) - 4} more" if len(names) > 4 else ""
    return f"cell{'s' if len(names) > 1 else ''} {', '.join(names[:4])}{more}"


def _pool_worker_init() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them with SIGTERM: a training cell
    then checkpoints after its current minibatch, anything else stops at once (no
    half-finished cell is ever cached)."""
    import signal

    global IN_POOL_WORKER
    IN_POOL_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_signal)
    _watch_parent(os.getppid())


#: seconds between a pool worker's checks that the main process is still alive
PARENT_CHECK_S = 1.0


def _watch_parent(parent: int) -> None:
    """End this worker within :data:`PARENT_CHECK_S` once the main process is gone (killed with
    SIGKILL, it cannot stop its workers): an orphan would train on, unseen, and write into the
    experiment folder while a new run of the same command writes there too. Portable: the
    worker is re-parented, so ``os.getppid()`` changes."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="mlplab-parent-watch", daemon=True).start()


def _execute(cells, jobs_list, args, jobs, threads, backend, emit, finish) -> None:
    if backend in ("ray", "dask"):
        from mlplab.experiments.cluster import run_on_cluster

        payload_jobs = [_job(cells, idx, args, threads) for idx in jobs_list]
        names = [" + ".join(cells[i].name for i in idx) for idx in jobs_list]
        for j, payloads in run_on_cluster(backend, _run_job, [(pj,) for pj in payload_jobs], jobs, emit,
                                          names, list(range(len(jobs_list)))):
            for i, payload in zip(jobs_list[j], payloads):
                finish(i, payload)
    elif jobs <= 1 or len(jobs_list) <= 1:
        import signal

        previous = {sig: signal.signal(sig, _stop_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for idx in jobs_list:
                for i in idx:
                    emit({"event": "cell_start", "name": cells[i].name, "index": i})
                for i, payload in zip(idx, _run_job(_job(cells, idx, args, threads))):
                    finish(i, payload)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(jobs_list)), mp_context=ctx,
                                 initializer=_pool_worker_init) as pool:
            pending = {}
            for idx in jobs_list:
                pending[pool.submit(_run_job, _job(cells, idx, args, threads))] = idx
                for i in idx:
                    emit({"event": "cell_start", "name": cells[i].name, "index": i})
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        idx = pending.pop(fut)
                        for i, payload in zip(idx, fut.result()):
                            finish(i, payload)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                # stop the running workers now instead of waiting for their cells to finish
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                raise


def plan_jobs(cells: list[Cell], todo: list[int]) -> list[list[int]]:
    """Group the cells to run into jobs (a stack's cells share a job), longest job first.

    The order is stable for equal costs, so serial and parallel runs plan the same jobs.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    jobs: list[list[int]] = []
    for i in todo:
        c = cells[i]
        if c.stack:
            key = (c.stack_kind, c.stack)
            if key not in groups:
                groups[key] = []
                jobs.append(groups[key])
            groups[key].append(i)
        else:
            jobs.append([i])
    return sorted(jobs, key=lambda idx: -sum(cells[i].cost for i in idx))


def _job(cells: list[Cell], idx: list[int], args: dict[int, tuple], threads: int) -> tuple:
    if len(idx) == 1:
        return ("cell", args[idx[0]])
    stack_kind = cells[idx[0]].stack_kind
    return ("stack", stack_kind, [args[i][:4] for i in idx], threads, args[idx[0]][5])


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
    """Per group (cells differing only by seed): mean and sample sd of every numeric top-level result.

    Cells group by :attr:`Cell.group_key` (their config without the seed), never by name, so two
    configurations are never averaged together; a group is listed under its cells' ``group`` name
    (with a key suffix should two groups share one). Diverged cells count in ``n_seeds`` and
    ``n_diverged`` and have no metrics; ``n_diverged_models``, only in a group some of whose
    finished cells had models diverge (:func:`diverged_models`), counts those models."""
    groups: dict[str, list[CellResult]] = {}
    names: dict[str, str] = {}
    for r in results:
        gk = r.cell.group_key
        if gk not in names:
            name = r.cell.group
            names[gk] = f"{name} [{gk[:8]}]" if name in names.values() else name
        groups.setdefault(gk, []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for gk, rs in groups.items():
        keys = list(dict.fromkeys(k for r in rs for k, v in r.result.items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)))
        out[names[gk]] = {"n_seeds": len(rs), "seeds": [r.cell.seed for r in rs],
                          "n_diverged": sum(1 for r in rs if diverged(r.result)),
                          "metrics": {k: mean_sd([r.result.get(k) for r in rs]) for k in keys}}
        gone = sum(diverged_models(r.result)[0] for r in rs)
        if gone:
            out[names[gk]]["n_diverged_models"] = gone
    return out
