"""Commands that rebuild reports from saved results: ``mlplab report`` and ``mlplab compare``.

Both read run folders only; nothing is retrained. Errors are :class:`mlplab.errors.MlplabError`
subclasses, printed as one line by :func:`mlplab.cli.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlplab.cli import path_arg


def report(
    run_dir: Annotated[Path, typer.Argument(
        parser=path_arg, help="Run folder holding metrics.json (and history.csv, predictions.npz, ...).")],
) -> None:
    """Rebuild a run's figures and its report.md / report.html from the saved results (no retraining)."""
    from rich.console import Console

    from mlplab.io import printable
    from mlplab.report import write_run_figures, write_run_report

    figures = write_run_figures(run_dir)
    md, page = write_run_report(run_dir, figures=False)
    console = Console(highlight=False)
    console.print(f"figures: {len(figures)} written to {printable(run_dir / 'figures')}")
    console.print(f"report:  {printable(md)}")
    console.print(f"html:    {printable(page)}")


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(parser=path_arg, help="Run folders to compare.")],
    out: Annotated[Path, typer.Option("--out", parser=path_arg,
                                      help="Folder for comparison.md and comparison.png.")] = Path("comparison"),
) -> None:
    """Print a side-by-side table of the runs' test metrics and write the comparison figure."""
    from rich.console import Console
    from rich.table import Table

    from mlplab.io import printable
    from mlplab.report import (
        COMPARE_COLUMNS,
        check_comparison_out,
        compare_runs,
        comparison_warnings,
        format_comparison_cell,
        write_comparison,
    )

    check_comparison_out(out, "--out")  # before any work, so nothing is half-written
    rows = compare_runs(run_dirs)
    # Runs side by side (one column each), metrics down the rows: fits a terminal for a few runs.
    table = Table(title="Run comparison (test set)")
    table.add_column("metric", justify="left", no_wrap=True)
    for row in rows:
        table.add_column(str(row["run"]), justify="right", overflow="fold")
    for key, label in COMPARE_COLUMNS[1:]:
        table.add_row(label, *(format_comparison_cell(key, row[key]) for row in rows))
    paths = write_comparison(run_dirs, out)
    for warning in comparison_warnings(rows):
        typer.echo(f"mlplab: warning: {warning}", err=True)
    console = Console(highlight=False)
    console.print(table)
    for p in paths:
        console.print(f"wrote {printable(p)}")


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to the ``mlplab`` command line."""
    app.command("report")(report)
    app.command("compare")(compare)
