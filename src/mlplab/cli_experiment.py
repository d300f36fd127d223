"""``mlplab experiment list | show NAME | run NAME|SPEC.toml``: declarative experiments."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlplab.cli import check_recordable, path_arg, path_text_arg

experiment_app = typer.Typer(help="Reproduce the reports' experiments and run sweeps from TOML specs.",
                             no_args_is_help=True)


@experiment_app.command("list")
def list_experiments() -> None:
    """List the built-in experiments."""
    from rich.console import Console
    from rich.table import Table

    from mlplab.config import read_toml
    from mlplab.experiments.spec import builtin_dir, builtin_names

    table = Table(title="Built-in experiments")
    table.add_column("name", no_wrap=True)
    table.add_column("title")
    for name in builtin_names():
        raw = read_toml(builtin_dir() / f"{name}.toml")
        table.add_row(name, str(raw.get("title", "")))
    Console(highlight=False).print(table)


@experiment_app.command("show")
def show(name: Annotated[str, typer.Argument(parser=path_text_arg,
                                              help="A built-in experiment name or a spec .toml file.")]) -> None:
    """Print an experiment's spec (copy it to a file, edit it, and run the copy)."""
    from mlplab.experiments.spec import load_spec, spec_path

    load_spec(name)  # validate
    typer.echo(spec_path(name).read_text(encoding="utf-8"), nl=False)


@experiment_app.command("run")
def run(
    name: Annotated[Optional[str], typer.Argument(parser=path_text_arg,
                                                  help="A built-in experiment name or a spec .toml file.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", parser=path_arg,
                                                help="Output folder (re-running resumes: finished cells are cached).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", parser=path_arg, help="Continue the interrupted experiment folder DIR "
                                                   "with its own spec and --seeds (the same as re-running the "
                                                   "command that started it). Options that would change the "
                                                   "experiment (NAME, --out, --seeds, --quick, --protocol, "
                                                   "--data-dir) are refused with it; --jobs, --threads, --backend "
                                                   "and --checkpoint-every may differ (another --threads can "
                                                   "change the last bits of the cells still to run).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Reduced version (fewer epochs, subsets): minutes, not hours. "
                                        "Into its own --out: a folder holds one resolved spec.")] = False,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Repeat every cell with K seeds; report mean ± sd "
                                                 "(default 1).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Worker processes (BLAS pinned to --threads threads each).")] = 1,
    threads: Annotated[int, typer.Option("--threads", help="BLAS threads per job (default 1). A sweep with fewer "
                                         "jobs than cores, e.g. one stacked model, runs faster with more; results "
                                         "are identical for the same --threads, serial or parallel.")] = 1,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", parser=path_arg,
                                                     help="Folder holding mnist/ (default $MLPLAB_DATA_DIR).")] = None,
    protocol: Annotated[Optional[str], typer.Option("--protocol", help="as-published, corrected or both (overrides the spec).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="process (default), ray or dask (optional extras).")] = "process",
    checkpoint_every: Annotated[float, typer.Option("--checkpoint-every", help="Seconds between checkpoints of a "
                                                    "running cell; an interrupted cell continues from its last "
                                                    "one when the command is run again.")] = 60.0,
) -> None:
    """Run an experiment: every cell a run folder, then summary.json and report.md/html.

    A cell whose training diverges is recorded (and cached) as diverged, the others run on, and
    the report lists it with n/a values; the exit code is then still 0. Models a cell trains
    together (ovr-logistic's detectors) can diverge alone: counted apart, at the end too.
    Sweeps of more than 10,000 cells are refused (set MLPLAB_MAX_CELLS to allow more)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlplab.data.fetch import checked_data_dir
    from mlplab.errors import ConfigError
    from mlplab.experiments.checkpoint import ENV_VAR
    from mlplab.experiments.protocols import get_protocol
    from mlplab.experiments.runner import (RUN_FILE, check_batch_sizes, check_data, check_experiment_out,
                                          check_names, check_settings, counted, diverged_note, model_noun, plan,
                                          run_experiment)
    from mlplab.experiments.spec import load_spec
    from mlplab.io import printable

    if resume is not None:
        if name is not None or out is not None:
            raise ConfigError("--resume DIR continues DIR with its own spec: give neither NAME nor --out with it")
        changing = [opt for opt, given in (("--seeds", seeds is not None), ("--quick", quick),
                                           ("--protocol", protocol is not None), ("--data-dir", data_dir is not None))
                    if given]
        if changing:
            raise ConfigError(f"--resume DIR continues DIR with its own spec and seeds: {', '.join(changing)} would "
                              "change the experiment (run NAME with them into another --out)")
        if not (resume / "spec.toml").is_file():
            raise ConfigError(f"--resume {resume}: no spec.toml there (not an experiment folder)")
        # the saved spec is already resolved; it records whether it was a --quick run (quick = true)
        name, out = str(resume / "spec.toml"), resume
        run_file = resume / RUN_FILE
        try:
            saved = json.loads(run_file.read_text(encoding="utf-8")) if run_file.exists() else {"seeds": 1}
            seeds = saved["seeds"]  # (folders written before run.json existed: one seed)
        except (OSError, ValueError, KeyError, TypeError):
            seeds = None
        if type(seeds) is not int or seeds < 1:
            raise ConfigError(f"{run_file}: expected {{\"seeds\": N}} with N >= 1 (the run's --seeds); fix it, or "
                              f"continue with `mlplab experiment run NAME --out {resume} --seeds N`")
    elif name is None or out is None:
        raise ConfigError("experiment run needs NAME and --out DIR (or --resume DIR)")
    seeds = 1 if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    if backend not in ("process", "ray", "dask"):
        raise ConfigError(f"--backend {backend!r}: must be process, ray or dask")
    from mlplab.experiments.cluster import check_backend

    check_backend(backend)
    if not checkpoint_every > 0 or checkpoint_every == float("inf"):
        raise ConfigError(f"--checkpoint-every must be a positive number of seconds, got {checkpoint_every}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    check_recordable(data_dir, "--data-dir")  # spec.toml records it
    overrides: dict = {}
    if data_dir is not None:
        overrides["data"] = {"data_dir": str(data_dir)}
    if protocol is not None:
        overrides["protocol"] = protocol
    spec = load_spec(name, quick=quick, overrides=overrides)
    if protocol is not None:
        from mlplab.experiments.spec import PROTOCOLS

        if protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol {protocol!r}: must be one of {', '.join(PROTOCOLS)}")
        spec.protocol = protocol
    # the workers inherit the setting; an explicit MLPLAB_CELL_CHECKPOINT_S wins over the default
    if ENV_VAR not in os.environ or checkpoint_every != 60.0:
        os.environ[ENV_VAR] = repr(float(checkpoint_every))
    console = Console(highlight=False, stderr=True)
    check_experiment_out(out, spec)
    planned = plan(spec, seeds)
    check_names(spec, planned)
    if quick:  # the full recipes too: a quick trial should not pass a spec whose full run would fail
        full = load_spec(name, quick=False, overrides=overrides)
        check_names(full, plan(full, seeds))
    check_batch_sizes(spec, planned)  # before the progress display starts: one clean line
    check_settings(spec, planned)
    checked_data_dir(spec.sections["data"].get("data_dir"))  # else every cell fails on it, after writing
    check_data(spec)
    total = len(planned)
    noun = model_noun(get_protocol(spec.runner))  # what a cell's models that can diverge alone are called
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[current]}"), console=console, transient=False) as bar:
        task = bar.add_task(f"{spec.name}{' (quick)' if spec.quick else ''}", total=total, current="")
        running: list[str] = []

        def progress(event: dict) -> None:
            kind = event.get("event")
            if kind == "cell_start":
                running.append(event["name"])
            elif kind == "cell_done":
                if event["name"] in running:
                    running.remove(event["name"])
                bar.advance(task)
                if event.get("diverged"):
                    bar.console.print(printable(f"  diverged {event['name']}: {event['diverged']}"), markup=False,
                                      highlight=False, soft_wrap=True)
                elif not event.get("cached"):
                    k, n = event.get("diverged_models") or (0, 0)
                    gone = f" ({k} of {counted(n, noun)} diverged)" if k else ""
                    bar.console.print(f"  done {event['name']} in {event['wall_s']:.1f} s{gone}")
            elif kind == "report":
                running[:] = ["writing report"]
            elif kind == "warning":
                bar.console.print(printable(f"mlplab: warning: {event['message']}"), markup=False,
                                  highlight=False, soft_wrap=True)
            bar.update(task, current=", ".join(running[:3]))

        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # SIGTERM stops like Ctrl-C
        try:
            summary = run_experiment(spec, out, seeds=seeds, jobs=jobs, threads=threads, backend=backend,
                                     progress=progress)
        finally:
            signal.signal(signal.SIGTERM, previous)
    print_comparison(Console(highlight=False), f"{spec.title}: published vs reproduced vs corrected",
                     summary["comparison"]["header"], summary["comparison"]["rows"], quick=spec.quick)
    cached = sum(1 for c in summary["cells"] if c["cached"])
    Console(highlight=False).print(f"{len(summary['cells'])} cells ({cached} cached"
                                   f"{diverged_note(summary, noun)}) in {summary['wall_s']:.1f} s; "
                                   f"report: {out / 'report.html'}")


QUICK_NOTE = ("these numbers come from --quick (less data, fewer epochs): they are not comparable with "
              "the published ones")


def terminal_label(header: str) -> str:
    """A comparison column's label for the terminal. ``corrected: X`` labels name metrics of the
    reproduced models, not the corrected protocol, so the prefix goes; a column that is the
    corrected protocol's own says so (``zeros init (corrected protocol), ...``)."""
    if not header.startswith("corrected: "):
        return header
    rest = header[len("corrected: "):]
    if rest.startswith("zeros init"):
        return "zeros init (corrected protocol)" + rest[len("zeros init"):]
    return rest


def print_comparison(console, title: str, header: list[str], rows: list[list], quick: bool = False) -> None:
    """The comparison table: as a table when it fits the console's width with every value on
    one line (headers may wrap between words), else one block per row with a ``label: value``
    line per column (the value on a line of its own when both do not fit), so no value or word
    is split over lines (an 80-column terminal, or output redirected to a file). Quick runs get
    a line saying their numbers are not the published protocol's."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    labels = [terminal_label(str(h)) for h in header]
    cells = [[str(c) for c in row] for row in rows]
    values = [max([1] + [cell_len(row[i]) for row in cells if i < len(row)]) for i in range(len(labels))]
    words = [max(cell_len(w) for w in (h.split() or [""])) for h in labels]
    if sum(max(v, w) + 3 for v, w in zip(values, words)) + 1 <= console.width:  # padding, borders
        table = Table(title=title)
        for h, v in zip(labels, values):
            table.add_column(h, min_width=v)
        for row in cells:
            table.add_row(*row)
        console.print(table)
    else:
        console.print(Text(title))
        for row in cells:
            console.print(Text(f"{labels[0]} {row[0]}" if row else ""))
            for label, value in zip(labels[1:], row[1:]):
                if not value:
                    continue
                line = f"  {label}: {value}"
                if cell_len(line) <= console.width:
                    console.print(Text(line), soft_wrap=True)
                else:
                    console.print(Text(f"  {label}:"), soft_wrap=True)
                    console.print(Text(f"      {value}"), soft_wrap=True)
    if quick:
        console.print(Text(QUICK_NOTE))


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
