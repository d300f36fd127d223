"""Run an experiment spec into an output folder.

Output folder::

    spec.toml          the resolved spec (after --quick and command-line overrides), headed by a
                       comment saying which keys the runner's cells read
    run.json           the other settings that decide the cells (--seeds), for --resume
    cells/<name>-<hash>/   one folder per cell: a run folder (config.toml, history.csv,
                       metrics.json, model.npz, environment.json, predictions.npz, figures,
                       report.md/html) plus cell.json (the cache entry, written last; its
                       ``data`` says which data the cell read: the cell runs again once that
                       data changes, see :mod:`mlplab.experiments.sweep`). As in
                       every run folder, metrics.json's ``data`` says which data exactly the
                       cell used (files and SHA-256s) and environment.json's ``command`` the
                       command line that ran the cell (a cached cell keeps its own)
    figures/*.png      the experiment's own figures
    summary.json       every cell's result, mean ± sd per group of seeds, the comparison table,
                       the cells that diverged (``diverged``) and the finished cells some of
                       whose models diverged (``cells_with_diverged_models``: ovr-logistic's
                       detectors train together, and one can diverge alone),
                       ``data_changed``: the cached cells this run trained again because their
                       data changed since (per cell, per dataset: its changed files and what
                       changed; ``[]`` when none), and ``command``: the command line that wrote
                       it, ``{"argv": ["mlplab", "experiment", "run", ...], "cwd": ...}``
                       (``null`` from the Python API)
    report.md, report.html   the FIRST table puts published, reproduced and corrected numbers
                       side by side; the HTML embeds its figures (self-contained); a paragraph
                       names the cells trained again on changed data, when there are any
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from mlplab.config import read_toml, to_toml
from mlplab.environment import command_line, environment_info
from mlplab.errors import ConfigError, DataError
from mlplab.experiments.protocols import get_protocol
from mlplab.experiments.protocols.common import ReportParts, _tomlable
from mlplab.experiments.spec import Spec, from_dict, key_use
from mlplab.experiments.sweep import (MAX_CELLS, MAX_CELLS_VAR, aggregate, check_distinct, diverged,
                                     diverged_models, grid_size, run_cells, with_seeds)
from mlplab.io import atomic_write_json, atomic_write_text

RUN_FILE = "run.json"
#: batch sizes up to this need no look at the data (every MNIST-family training set is larger)
_SAFE_BATCH = 1000
#: training-set sizes already looked up, per data configuration (the CLI checks before its
#: progress display, then run_experiment checks again: the data is prepared once)
_TRAIN_SIZES: dict[str, int] = {}
#: (train, test) rows of the split, per data and split configuration (max_*_samples aside)
_SPLIT_SIZES: dict[str, tuple[int, int]] = {}


def check_names(spec: Spec, cells) -> None:
    """The names a cell will look up (dataset, activations, loss, initialiser, optimizer and
    schedule with their settings) exist, so a typo is refused before any cell runs and writes."""
    import numpy as np

    from mlplab.data.datasets import _resolve
    from mlplab.optimizers import get_optimizer
    from mlplab.schedules import get_schedule

    seen: set[str] = set()
    for c in cells:
        cfg = c.config
        key = json.dumps([cfg.get(k) for k in ("data", "model", "training")], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        d, m, t = (cfg.get(k) or {} for k in ("data", "model", "training"))
        try:
            if isinstance(d.get("dataset"), str):
                _resolve(d["dataset"])  # a known name or a folder's path, without loading anything
            if isinstance(m.get("hidden"), list) and "loss" in m:
                _tiny_network(m)  # activations, loss and initialiser: names, settings and pairing
            if isinstance(t.get("optimizer"), str):
                get_optimizer({"name": t["optimizer"], **(t.get("optimizer_params") or {})}, [np.zeros(1)], lr=0.1)
            if isinstance(t.get("schedule"), str):
                get_schedule({"name": t["schedule"], **(t.get("schedule_params") or {})})
        except (ConfigError, DataError, TypeError, ValueError) as exc:
            raise ConfigError(f"{spec.origin}: cell {c.name!r}: {exc}") from None


def _tiny_network(m: dict[str, Any]) -> None:
    """Build the cell's network at toy size: the constructor checks what it is made of."""
    from mlplab.losses import LOSSES
    from mlplab.network import MLP

    loss = m["loss"].get("name") if isinstance(m["loss"], dict) else m["loss"]
    binary = isinstance(loss, str) and LOSSES.get(loss) is LOSSES.get("binary_cross_entropy")
    MLP([2, *[1] * len(m["hidden"]), 1 if binary else 3], hidden_activation=m.get("hidden_activation", "sigmoid"),
        output_activation=m.get("output_activation", "softmax"), loss=m["loss"], init=m.get("init", "glorot"),
        init_params=m.get("init_params") or None, dropout=m.get("dropout", 0.0), l2=m.get("l2", 0.0),
        dtype="float64", seed=0, shared_bias=m.get("shared_bias", False))


def check_batch_sizes(spec: Spec, cells) -> None:
    """A batch larger than the training set is refused before any cell starts. Large batch sizes
    (rare) are checked against the prepared data, once per distinct data configuration."""
    from mlplab.experiments.protocols import common

    sizes = _TRAIN_SIZES
    for c in cells:
        cfg = c.config
        t = cfg.get("training") or {}
        bs = t.get("batch_size")
        if not isinstance(bs, int) or isinstance(bs, bool) or bs <= _SAFE_BATCH or "data" not in cfg:
            continue
        limit = (cfg.get("data") or {}).get("max_train_samples")
        if not (isinstance(limit, int) and bs > limit):
            key = json.dumps([cfg.get("data"), cfg.get("split")], sort_keys=True, default=str)
            if key not in sizes:
                sizes[key] = int(common.prepare(cfg).X_train.shape[0])
            limit = sizes[key]
            if bs <= limit:
                continue
        raise ConfigError(f"{spec.origin}: training.batch_size {bs} is larger than the training set "
                          f"({limit} samples) of cell {c.name!r}")


def check_settings(spec: Spec, cells) -> None:
    """Settings of the generic runner's cells that could not take effect are refused before any
    cell runs: a ``training.record_epochs`` entry beyond ``training.epochs`` (the snapshot would
    never be taken) and ``data.max_train_samples`` / ``max_test_samples`` larger than the split's
    part (the "subset" would be the whole part)."""
    from mlplab.experiments.protocols import common

    for c in cells:
        cfg = c.config
        if not c.kind.startswith("generic:"):
            continue
        t, d = cfg.get("training") or {}, cfg.get("data") or {}
        late = [e for e in t.get("record_epochs") or [] if isinstance(e, int) and e > t.get("epochs", e)]
        if late:
            raise ConfigError(f"{spec.origin}: training.record_epochs {late[0]} is beyond training.epochs "
                              f"{t['epochs']} of cell {c.name!r}")
        if not (d.get("max_train_samples") or d.get("max_test_samples")):
            continue
        base = {**cfg, "data": {**d, "max_train_samples": None, "max_test_samples": None}}
        key = json.dumps([base["data"], cfg.get("split")], sort_keys=True, default=str)
        if key not in _SPLIT_SIZES:
            _, _, _, tr, te, _ = common.split_indices(base)
            _SPLIT_SIZES[key] = (len(tr), len(te))
        for name, limit, size in (("max_train_samples", d.get("max_train_samples"), _SPLIT_SIZES[key][0]),
                                  ("max_test_samples", d.get("max_test_samples"), _SPLIT_SIZES[key][1])):
            if isinstance(limit, int) and limit > size:
                part = name.split("_")[1]
                raise ConfigError(f"{spec.origin}: data.{name} {limit} is larger than the {part} set ({size} "
                                  f"samples) of cell {c.name!r}; remove it to use the whole {part} set")


def check_data(spec: Spec) -> None:
    """The protocol's checks of the spec against the data (optional ``check_data(spec)`` hook of a
    protocol module, e.g. a class the data does not have), before any cell runs and writes."""
    check = getattr(get_protocol(spec.runner), "check_data", None)
    if check is not None:
        check(spec)


def check_experiment_out(out: Path, spec: Spec) -> None:
    """``out`` may be new, empty, or a run of this very resolved spec (its finished cells are
    reused, the rest run, and summary and report are written again); never a training run,
    another experiment, or another variant of this one (``--quick``, an edited spec, another
    ``--protocol``), whose results the run would overwrite."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    saved = out / "spec.toml"
    if not saved.is_file():
        raise ConfigError(f"--out {out}: is not empty and not an experiment folder (no spec.toml); "
                          "choose a new or empty folder")
    try:
        raw = read_toml(saved)
    except ConfigError:  # unreadable: certainly not safe to overwrite
        raw = {}
    name = raw.get("name")
    if name != spec.name:
        raise ConfigError(f"--out {out}: holds experiment {name!r}, not {spec.name!r}; choose another folder")
    try:
        before = from_dict(raw, origin=str(saved))
    except ConfigError as exc:
        raise ConfigError(f"--out {out}: its run's spec no longer validates ({exc}); choose another folder") from None
    changed = spec.differences(before)
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise ConfigError(f"--out {out}: holds another run of {spec.name!r} (this run vs the folder's: "
                          f"{', '.join(changed[:3])}{more}); use --resume {out} for that run, or another --out "
                          "for this one")
    if (out / "cells").exists() and not (out / "cells").is_dir():
        raise ConfigError(f"--out {out}: {out / 'cells'} is a file, not the folder of the experiment's cells")


def max_cells() -> int:
    """The largest sweep :func:`plan` accepts: :data:`MAX_CELLS`, or ``$MLPLAB_MAX_CELLS``."""
    text = os.environ.get(MAX_CELLS_VAR)
    if text is None:
        return MAX_CELLS
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"${MAX_CELLS_VAR} = {text!r}: must be a whole number of cells") from None


def saved_seeds(out: Path) -> int | None:
    """The ``--seeds`` of the run already in ``out`` (its run.json), else ``None``."""
    try:
        return int(json.loads((out / RUN_FILE).read_text(encoding="utf-8"))["seeds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan(spec: Spec, seeds: int = 1):
    """The cells of ``spec`` with ``seeds`` seeds each; two cells of the same resolved config
    (which spec validation should have refused) are refused here, before anything is written.
    A sweep of more than :func:`max_cells` cells is refused from its axis lengths, before any
    cell is built (a typo'd axis would otherwise plan, and start, for hours)."""
    n = grid_size(spec.sweep) * int(seeds) if spec.sweep else 0
    limit = max_cells()
    if n > limit:
        sizes = " x ".join(str(len(v)) for v in spec.sweep.values())
        raise ConfigError(f"{spec.origin}: [sweep] makes {n:,} cells ({sizes}{f' x {seeds} seeds' if seeds > 1 else ''}"
                          f"), more than {limit:,}; shrink the axes, or set ${MAX_CELLS_VAR} to allow more")
    module = get_protocol(spec.runner)
    cells = with_seeds(module.cells(spec, seeds), seeds, getattr(module, "SEED_PATH", "seed"))
    check_distinct(cells, spec.origin)
    return cells


def spec_text(spec: Spec) -> str:
    """The resolved spec as TOML, headed by what its runner's cells read."""
    head = "The resolved spec of this run (--quick and command-line overrides applied)."
    use = key_use(spec)
    if use is not None:
        head += f" Runner {spec.runner!r}: {use.describe()}."
    comment = textwrap.fill(head, 100, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)
    return f"{comment}\n{to_toml(_tomlable(spec.to_dict()))}"


def run_experiment(spec: Spec, out: str | Path, *, seeds: int = 1, jobs: int = 1, threads: int = 1,
                   backend: str = "process",
                   progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every cell of ``spec`` (cached ones load), then write summary.json and the report."""
    if int(seeds) < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if int(jobs) < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if int(threads) < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    out = Path(out)
    check_experiment_out(out, spec)
    module = get_protocol(spec.runner)
    cells = plan(spec, seeds)
    check_names(spec, cells)  # before anything is written
    check_batch_sizes(spec, cells)
    check_settings(spec, cells)
    check_data(spec)
    before = saved_seeds(out)
    if before is not None and before != int(seeds):
        note = (f"--out {out} held this experiment with --seeds {before}; its summary and report now describe "
                f"--seeds {seeds} (every finished cell stays cached: --seeds {before} again gives them back)")
        if progress is None:
            import warnings

            warnings.warn(note, stacklevel=2)
        else:
            progress({"event": "warning", "message": note})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spec.toml", spec_text(spec))
    atomic_write_text(out / RUN_FILE, json.dumps({"seeds": int(seeds)}) + "\n")  # what --resume needs besides the spec
    t0 = time.perf_counter()
    results = run_cells(cells, out / "cells", jobs=jobs, threads=threads, progress=progress, backend=backend)
    wall = time.perf_counter() - t0
    failed = [r for r in results if diverged(r.result)]  # every runner reports these: no metrics, "diverged"
    aggregates = aggregate(results)
    (out / "figures").mkdir(exist_ok=True)
    emit = progress or (lambda e: None)
    emit({"event": "report"})
    try:
        parts: ReportParts = module.report(spec, results, out, aggregates)
    except FileNotFoundError as exc:  # cells cached before cell.json recorded their files are not verified
        raise DataError(f"{exc.filename}: missing from a cached cell; delete that cell's folder and run the "
                        "command again") from None
    use = key_use(spec)
    records = cell_records(results)
    summary = {
        "experiment": spec.name,
        "command": command_line(),
        "title": spec.title,
        "protocol": spec.protocol,
        "quick": spec.quick,
        "seeds": seeds,
        "jobs": jobs,
        "threads_per_job": threads,
        "wall_s": wall,
        "diverged": [r.cell.name for r in failed],
        "diverged_errors": {r.cell.name: diverged(r.result) for r in failed},
        "cells_with_diverged_models": partly_diverged(results),
        "data_changed": [{"cell": r.cell.name, "folder": str(r.folder.relative_to(out)), "data": r.data_changes}
                         for r in results if r.data_changes],
        "cells": [{"name": r.cell.name, "group": r.cell.group, "seed": r.cell.seed, "key": r.cell.key,
                   "status": "diverged" if diverged(r.result) else "finished",
                   "folder": str(r.folder.relative_to(out)), "cached": r.cached, "wall_s": r.wall_s,
                   "threads": rec["threads"], "result": r.result} for r, rec in zip(results, records)],
        "groups": aggregates,
        "comparison": {"header": parts.comparison[0], "rows": parts.comparison[1]},
        "spec_keys": None if use is None else {"read": sorted(use.read), "fixed": use.fixed, "text": use.describe()},
        **parts.summary,
    }
    atomic_write_json(out / "summary.json", summary)
    write_report(out, spec, summary, parts, results, records)
    return summary


def model_noun(module) -> str:
    """What the runner ``module`` calls the models its cells train together (its ``MODEL_NOUN``:
    ovr-logistic's "detector"), for the counts of diverged ones; "model" by default."""
    return getattr(module, "MODEL_NOUN", "model")


def partly_diverged(results) -> dict[str, dict[str, int]]:
    """Per finished cell some of whose models diverged (:func:`~mlplab.experiments.sweep.diverged_models`):
    ``{"diverged": k, "of": n}``, by cell name. These cells are not in summary.json's
    ``diverged`` (they trained, and report the models that did): counted apart."""
    out = {}
    for r in results:
        k, n = diverged_models(r.result)
        if k:
            out[r.cell.name] = {"diverged": k, "of": n}
    return out


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 detector", "3 detectors"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def diverged_note(summary: dict[str, Any], noun: str = "model") -> str:
    """What diverged in the run ``summary`` describes, for the end-of-run line: ``", 2 diverged"``
    (cells), then ``"; 3 detectors in 2 other cells diverged"`` for the models (called ``noun``)
    that diverged inside cells that finished (:func:`partly_diverged`); empty when nothing did."""
    bad = len(summary.get("diverged") or [])
    note = f", {bad} diverged" if bad else ""
    cells = summary.get("cells_with_diverged_models") or {}
    if cells:
        k = sum(c["diverged"] for c in cells.values())
        note += (f"; {counted(k, noun)} in {len(cells)} {'other ' if bad else ''}"
                 f"cell{'' if len(cells) == 1 else 's'} diverged")
    return note


def cell_records(results) -> list[dict[str, Any]]:
    """What each cell's own files say it ran with, since cells loaded from the cache may have
    run with other threads or library versions than this invocation: ``threads`` from its
    cell.json (cells finished before it recorded them: the BLAS rows of its environment.json,
    else ``None``) and ``env``, its environment.json (``None`` if absent or unreadable)."""
    from mlplab.experiments.sweep import CELL_FILE

    out = []
    for r in results:
        saved, env = _read_json(r.folder / CELL_FILE), _read_json(r.folder / "environment.json")
        threads = saved.get("threads") if isinstance(saved, dict) else None
        if not _count(threads) and isinstance(env, dict):
            blas = [b for b in env.get("blas") or [] if isinstance(b, dict) and b.get("user_api") == "blas"]
            counts = {b.get("num_threads") for b in blas if _count(b.get("num_threads"))}
            threads = counts.pop() if len(counts) == 1 else None
        out.append({"threads": threads if _count(threads) else None,
                    "env": env if isinstance(env, dict) else None})
    return out


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def environment_text(results, records: list[dict[str, Any]], threads_now: int) -> str:
    """The report's Environment paragraph, from the cells' own records (the cells of one folder
    can come from several invocations); this process's environment where a cell has none."""
    here = environment_info()
    envs = [rec["env"] or here for rec in records] or [here]

    def distinct(values: list[Any]) -> str:
        counts = Counter(str(v) for v in values)
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{v} ({n} cell{'s' if n > 1 else ''})" for v, n in sorted(counts.items()))

    def version(e: dict[str, Any], lib: str) -> Any:
        v = e.get("versions")
        return v.get(lib) if isinstance(v, dict) else None

    # torch: the versions in the cells' processes that had loaded it (older files: a version meant loaded)
    torch = [version(e, "torch") for e in envs
             if (e.get("torch_loaded") if "torch_loaded" in e else version(e, "torch"))]
    cpus = [e.get("cpu") if isinstance(e.get("cpu"), dict) else {} for e in envs]
    head = (f"numpy {distinct([version(e, 'numpy') for e in envs])}, scikit-learn "
            f"{distinct([version(e, 'sklearn') for e in envs])}, torch {distinct(torch) if torch else 'not loaded'}, "
            f"{distinct([c.get('affinity') or c.get('logical_cores') for c in cpus])} usable cores")
    return f"{head}; {_threads_text(results, records, threads_now)}."


def _threads_text(results, records: list[dict[str, Any]], threads_now: int) -> str:
    """Which BLAS thread counts the cells ran with, cached ones apart."""
    ran = [rec["threads"] for r, rec in zip(results, records) if not r.cached]
    cached = [rec["threads"] for r, rec in zip(results, records) if r.cached]
    if not cached and len(set(ran)) == 1:
        return f"every job ran with BLAS pinned to {ran[0]} thread(s)"

    def groups(values: list[int | None], verb: str) -> list[str]:
        counts = Counter(values)
        return [f"{n} cell{'s' if n > 1 else ''} {verb} "
                + ("an unrecorded number of threads" if t is None else f"{t} thread(s)")
                for t, n in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))]

    parts = groups(ran, "ran in this invocation with BLAS pinned to")
    parts += groups(cached, "loaded from the cache had run with BLAS pinned to")
    return "; ".join(parts) + f" (this invocation's --threads: {threads_now})"


def data_changed_text(changed: list[dict[str, Any]]) -> str:
    """The report's paragraph on the cached cells this run trained again because the data they
    were trained on changed since (summary.json's ``data_changed``): how many, and per dataset
    what changed and which cells, so a reader of the report knows which numbers are new, and why."""
    by_dataset: dict[tuple[str, Any], tuple[list[str], list[str]]] = {}
    for entry in changed:
        for d in entry["data"]:
            names, changes = by_dataset.setdefault((d["dataset"], d["data_dir"]), ([], []))
            names.append(entry["cell"])
            changes += [c for c in d["changes"] if c not in changes]
    parts = []
    for (dataset, data_dir), (names, changes) in by_dataset.items():
        where = f"dataset {dataset}" + (f" (data dir {data_dir})" if data_dir is not None else "")
        more = f" and {len(changes) - 2} more" if len(changes) > 2 else ""
        cells = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        parts.append(f"{where} ({'; '.join(changes[:2])}{more}): {cells}")
    n = len(changed)
    them = "them" if n > 1 else "it"
    text = "; ".join(parts)
    return (f"Trained again on changed data: {n} cached cell{'s' if n > 1 else ''} had been trained on data that has "
            f"changed since, so this run trained {them} again (summary.json's data_changed lists {them} with the "
            f"changed files). {text[0].upper()}{text[1:]}.")


#: settings a quick run's report states (those its runner reads), as the resolved spec holds them
_QUICK_KEYS = ("training.epochs", "training.record_epochs", "training.cost_every", "data.max_train_samples",
               "data.max_test_samples")


def quick_blocks(spec: Spec) -> list[tuple]:
    """What a ``--quick`` run ran, from its resolved spec: the spec's description is the full
    run's, so it is marked as such and followed by the settings --quick changed (or, for a spec
    resumed from its saved spec.toml, which no longer holds the full values, the values of the
    usual ones: epochs, budgets, cost interval, subsets)."""
    blocks: list[tuple] = []
    if spec.description:
        blocks.append(("p", f"The full run (not this one): {spec.description}"))
    if spec.quick_changes:
        return blocks + [("p", "This quick run changed: " + "; ".join(spec.quick_changes) + ".")]
    use = key_use(spec)
    settings = []
    for path in _QUICK_KEYS:
        sec, key = path.split(".")
        value = spec.sections[sec][key]
        if (use is None or use.reads(path)) and value not in (None, [], 0):
            settings.append(f"{path} = {', '.join(map(str, value)) if isinstance(value, list) else value}")
    text = "; ".join(settings) if settings else "see spec.toml"
    return blocks + [("p", f"This quick run's settings (from its resolved spec): {text}.")]


def write_report(out: Path, spec: Spec, summary: dict[str, Any], parts: ReportParts, results,
                 records: list[dict[str, Any]] | None = None) -> tuple[Path, Path]:
    from mlplab.report import render_html, render_markdown

    if records is None:
        records = cell_records(results)
    blocks: list[tuple] = [("h1", spec.title)]
    blocks.append(("h2", "Published vs reproduced vs corrected protocol"))
    blocks.append(("table", parts.comparison[0], parts.comparison[1]))
    mode = "quick (reduced: fewer epochs and/or subsets; numbers are NOT comparable with the published ones)" \
        if spec.quick else "full"
    blocks.append(("p", f"Protocol: {spec.protocol}. Mode: {mode}. Seeds per cell: {summary['seeds']}. "
                        f"Cells: {len(results)} ({sum(r.cached for r in results)} loaded from the cache). "
                        f"Wall time of this invocation: {summary['wall_s']:.1f} s with {summary['jobs']} job(s)."))
    if summary.get("data_changed"):
        blocks.append(("p", data_changed_text(summary["data_changed"])))
    if spec.quick:
        blocks += quick_blocks(spec)
    elif spec.description:
        blocks.append(("p", spec.description))
    if summary.get("spec_keys"):
        blocks.append(("p", f"Spec keys (runner {spec.runner!r}): {summary['spec_keys']['text']}."))
    blocks.extend(parts.blocks)
    for note in spec.report.get("notes", []):
        blocks.append(("p", note))
    blocks.append(("h2", "Cells"))
    noun = model_noun(get_protocol(spec.runner))
    rows = []
    for r in results:
        res = r.result
        acc = res.get("test_accuracy")
        status = "cached" if r.cached else "run"
        if diverged(res):
            status = f"diverged ({status})"
        k, n = diverged_models(res)
        if k:  # the cell finished, but not every one of its models trained
            status = f"{status} ({k} of {counted(n, noun)} diverged)"
        rows.append([r.cell.name, status, f"{r.wall_s:.1f}",
                     "n/a" if acc is None else f"{100 * acc:.2f}", str(r.folder.relative_to(out))])
    blocks.append(("table", ["cell", "status", "wall (s)", parts.cell_accuracy_label, "folder"], rows))
    bad = [r for r in results if diverged(r.result)]
    if bad:
        blocks.append(("h2", "Diverged cells"))
        blocks.append(("p", f"{len(bad)} of {len(results)} cells diverged: their training stopped with the error "
                            "below and they have no metrics (n/a above, \"diverged\" in the tables); every other "
                            "cell is reported as usual."))
        blocks.append(("ul", [f"{r.cell.name} ({r.folder.relative_to(out)}): {diverged(r.result)}" for r in bad]))
    partly = [(r, diverged_models(r.result)) for r in results if diverged_models(r.result)[0]]
    if partly:
        total = sum(k for _, (k, _) in partly)
        blocks.append(("h2", f"Cells with diverged {noun}s"))
        blocks.append(("p", f"{counted(total, noun)} diverged in {len(partly)} {'other ' if bad else ''}"
                            f"cell{'' if len(partly) == 1 else 's'}, whose other {noun}s trained on: those cells "
                            f"finished and are reported from the {noun}s that trained; each diverged {noun} has "
                            "no metrics (\"diverged\" in the tables) and stopped with the error below."))
        blocks.append(("ul", [f"{r.cell.name} ({r.folder.relative_to(out)}): {k} of {counted(n, noun)} diverged: "
                              + "; ".join(dict.fromkeys(diverged(m) for m in r.result["models"] if diverged(m)))
                              for r, (k, n) in partly]))
    if summary["seeds"] > 1:
        from mlplab.experiments.protocols.common import diverged_label, pm

        blocks.append(("h2", f"Mean ± sd over {summary['seeds']} seeds"))
        srows = []
        for g, agg in summary["groups"].items():
            m = agg["metrics"]
            label = diverged_label(g, agg.get("n_diverged", 0), agg["n_seeds"])
            if agg.get("n_diverged_models"):
                label += f" ({counted(agg['n_diverged_models'], noun)} diverged)"
            srows.append([label, pm(m.get("test_accuracy")),
                          pm(m.get("train_accuracy")), pm(m.get("test_auc_ovr_macro"), 1, 4),
                          pm(m.get("training_time_s"), 1, 1)])
        blocks.append(("table", ["group", parts.cell_accuracy_label, "train accuracy (%)", "macro AUC OvR",
                                 "train time (s)"], srows))
    blocks.append(("h2", "Environment"))
    blocks.append(("p", "From the cells' own environment.json and cell.json: "
                        + environment_text(results, records, summary.get("threads_per_job", 1))))
    md = atomic_write_text(out / "report.md", render_markdown(blocks))
    page = atomic_write_text(out / "report.html", render_html(blocks, spec.title, out))
    return md, page
