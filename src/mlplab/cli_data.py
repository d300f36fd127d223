"""``mlplab data ...``: fetch, inspect and look at datasets.

Errors are raised as :class:`mlplab.errors.MlplabError` subclasses; :func:`mlplab.cli.main`
prints them as one line and exits with status 2 (``data fetch``: 3 when no source could provide
the dataset).
"""

from __future__ import annotations

import io
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from mlplab.cli import path_arg
from mlplab.errors import ConfigError
from mlplab.io import printable

data_app = typer.Typer(
    name="data",
    help="Fetch, verify, describe and show datasets (mnist, fashion-mnist, digits, or a folder of IDX files).",
    no_args_is_help=True,
    add_completion=False,
)

#: ``data fetch``'s exit status when no source could provide the dataset (see its help)
FETCH_UNREACHABLE = 3
_DATA_DIR_HELP = "Folder holding one subfolder per dataset (<data-dir>/mnist/...); default $MLPLAB_DATA_DIR."
_IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the main application."""
    app.add_typer(data_app, name="data")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _warn(message: str) -> None:
    typer.echo(f"mlplab: warning: {printable(message)}", err=True)


def source_announcer():
    """A ``progress(done, total, label)`` callback printing one line per source tried (a file
    from a mirror, npm), so that a slow download is not silent where no bar can be shown."""
    tried: set[str] = set()

    def announce(done: int, total: int | None, label: str) -> None:
        if label not in tried:
            tried.add(label)
            typer.echo(f"mlplab: trying {printable(label)}", err=True)

    return announce


@contextmanager
def download_progress() -> Iterator[Optional[callable]]:
    """A ``progress(done, total, label)`` callback for loading a dataset: rich bars when stderr
    is a TTY, else :func:`source_announcer`'s lines. Any command that may download can pass it
    to ``load_dataset``."""
    if not sys.stderr.isatty():
        yield source_announcer()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    tasks: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=_stderr_console(), transient=False,
    ) as bar:
        def callback(done: int, total: int | None, label: str) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield callback


@data_app.command("list")
def list_cmd() -> None:
    """List the dataset names mlplab knows."""
    from mlplab.data import list_datasets

    for name, text in list_datasets().items():
        typer.echo(f"{name:15s} {text}")


@data_app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(..., help="mnist, fashion-mnist, digits, or a folder of IDX files."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", parser=path_arg, help=_DATA_DIR_HELP),
) -> None:
    """Find or download a dataset, verify its SHA-256 checksums and cache it.

    Exit status 3 when no source could provide it (offline), 2 for a bad argument or local copy.
    """
    from mlplab.data import load_dataset
    from mlplab.errors import DownloadError

    try:
        with download_progress() as progress:
            ds = load_dataset(name, data_dir=data_dir, download=True, progress=progress, warn=_warn)
    except DownloadError as exc:
        exc.exit_code = FETCH_UNREACHABLE
        raise
    state = ("checksums verified" if ds.verified else "parse-validated (no known checksum)") if ds.sha256 \
        else "bundled with scikit-learn (no checksum)"
    typer.echo(printable(f"{ds.name}: {ds.n_train} train + {ds.n_test} test images, {state}; source: {ds.source}"))


@data_app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="mnist, fashion-mnist, digits, or a folder of IDX files."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", parser=path_arg, help=_DATA_DIR_HELP),
    download: bool = typer.Option(False, "--download/--no-download", help="Download if missing."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Where a dataset lives, its counts, class balance and whether checksums were verified."""
    from mlplab.data import dataset_info

    with download_progress() as progress:
        info = _printable_strings(dataset_info(name, data_dir=data_dir, download=download, progress=progress,
                                               warn=_warn))
    if as_json:
        import json

        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    head = Table(title=f"{info['name']}", show_header=False)
    head.add_column("key", style="bold")
    head.add_column("value")
    head.add_row("description", info["description"])
    head.add_row("source", info["source"])
    head.add_row("train / test", f"{info['n_train']} / {info['n_test']}")
    head.add_row("image shape", "x".join(map(str, info["image_shape"])))
    head.add_row("pixel max", str(info["pixel_max"]))
    head.add_row("checksums verified", "yes" if info["checksums_verified"] else
                 "no (no known checksum)" if info["sha256"] else "no checksum (bundled with scikit-learn)")
    console.print(head)
    bal = Table(title="class balance")
    for col in ("class", "name", "train", "train %", "test", "test %"):
        bal.add_column(col, justify="right" if col != "name" else "left")
    tr, te = info["class_counts"]["train"], info["class_counts"]["test"]
    for c, cname in enumerate(info["class_names"]):
        bal.add_row(
            str(c), cname, str(tr[c]), f"{100 * tr[c] / max(1, info['n_train']):.2f}",
            str(te[c]), f"{100 * te[c] / max(1, info['n_test']):.2f}",
        )
    console.print(bal)


def _printable_strings(value):
    """``value`` (JSON-able) with every string, keys too, passed through :func:`printable`: a file
    name's non-UTF-8 bytes become ``\\xff`` escapes, never lone surrogates, which are not Unicode."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k): _printable_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable_strings(v) for v in value]
    return value


def render_grid(images, labels, class_names, image_shape, title: str, fmt: str, pixel_max: float = 255) -> bytes:
    """A picture grid of ``images`` (n, d) with their labels, as bytes of format ``fmt``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(images)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(1.3 * cols, 1.45 * rows + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i].reshape(image_shape), cmap="Greys", vmin=0, vmax=pixel_max, interpolation="nearest")
        ax.set_title(str(class_names[int(labels[i])]), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()


@data_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="mnist, fashion-mnist, digits, or a folder of IDX files."),
    n: int = typer.Option(25, "--n", help="Number of images (1..400)."),
    out: Path = typer.Option(Path("grid.png"), "--out", parser=path_arg, help="Picture to write (.png, .pdf, .svg, .jpg)."),
    split: str = typer.Option("train", "--split", help="train or test."),
    seed: int = typer.Option(0, "--seed", help="Seed for choosing the images."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", parser=path_arg, help=_DATA_DIR_HELP),
) -> None:
    """Write a grid of randomly chosen images with their labels."""
    from mlplab.data import load_dataset
    from mlplab.data.splits import as_generator
    from mlplab.io import atomic_write_bytes, check_file_target

    if split not in ("train", "test"):
        raise ConfigError(f"--split {split!r}: valid values are train, test")
    if not 1 <= n <= 400:
        raise ConfigError(f"--n {n}: must be between 1 and 400")
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be >= 0")
    suffix = out.suffix.lower()
    if suffix not in _IMAGE_SUFFIXES:
        raise ConfigError(f"--out {out}: unsupported picture type {suffix or '(none)'}; use {', '.join(_IMAGE_SUFFIXES)}")
    check_file_target(out, "--out")
    with download_progress() as progress:
        ds = load_dataset(name, data_dir=data_dir, download=True, progress=progress, warn=_warn)
    X, y = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)
    k = min(n, len(y))
    idx = as_generator(seed).choice(len(y), size=k, replace=False)
    fmt = "jpeg" if suffix in (".jpg", ".jpeg") else suffix[1:]
    data = render_grid(X[idx], y[idx], ds.class_names, ds.image_shape,
                       f"{ds.name} {split}: {k} images, seed {seed}", fmt, ds.pixel_max)
    atomic_write_bytes(out, data)
    typer.echo(f"wrote {printable(out)} ({k} {split} images of {printable(ds.name)})")
