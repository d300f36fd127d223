"""The ``mlplab`` command line: a thin layer over the library.

Every command is one function whose docstring is its help. Errors the user can cause are
:class:`mlplab.errors.MlplabError`; :func:`main` prints them as one line on stderr and exits
with their exit code (2), never with a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from mlplab.errors import ConfigError, MlplabError
from mlplab.io import printable

app = typer.Typer(
    name="mlplab",
    help="Neural networks from scratch in NumPy, and the experiments that teach how they learn.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def path_arg(value: str | Path) -> Path:
    """Parser of the path options and arguments (``parser=path_arg``). ``Path("")`` is the current
    folder, so ``--out ''`` (an unset shell variable, say) would write a run's files there: an
    empty or blank value is refused, as a usage error naming the option."""
    if not str(value).strip():
        raise typer.BadParameter(f"{str(value)!r} is empty or blank")
    return Path(value)


def path_text_arg(value: str) -> str:
    """:func:`path_arg` for path options kept as text (they go into a config as strings)."""
    path_arg(value)
    return value


def check_recordable(value: str | os.PathLike | None, option: str) -> None:
    """Refuse a path whose name is not UTF-8 (see :func:`mlplab.io.printable`) where a saved TOML
    file (config.toml, spec.toml) records it: TOML holds only UTF-8 text, so the copy saved would
    name another folder and resuming or re-running from it would fail."""
    if value is not None and printable(value) != os.fspath(value):
        raise ConfigError(f"{option} {printable(value)}: the name holds bytes that are not UTF-8, which the "
                          "saved TOML configuration cannot record; rename it")


_registered = False


def _register_subcommands() -> None:
    # Each sub-module adds its commands to ``app``; imported here so ``mlplab --help`` lists all.
    # Once per process: registering again would append a second copy of every command, and the
    # framework rebuilds the whole command tree on every call (main() called N times in one
    # process, as the tests do, grew quadratically: ~4 s per call after a few hundred calls).
    global _registered
    if _registered:
        return
    from mlplab import cli_data, cli_eval, cli_experiment, cli_train  # noqa: F401

    for module in (cli_train, cli_data, cli_eval, cli_experiment):
        module.register(app)
    _registered = True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code. ``argv``: the arguments after
    the program name (default ``sys.argv[1:]``); run folders record them, as ``mlplab ARGS``,
    with the working folder (see :func:`mlplab.environment.command_line`)."""
    from mlplab.environment import command_record, recorded_command

    _register_subcommands()
    # what the run folders this command writes record as their command line (environment.json)
    command = command_record(sys.argv[1:] if argv is None else list(argv))
    try:
        with recorded_command(command):
            rv = app(args=argv, prog_name="mlplab", standalone_mode=False)
        # With standalone_mode=False the framework returns the code of a ``typer.Exit`` it caught.
        if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
            if rv == 130:  # typer turns a KeyboardInterrupt into Exit(130)
                typer.echo("mlplab: interrupted", err=True)
            return rv
    except MlplabError as exc:
        typer.echo(f"mlplab: error: {printable(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("mlplab: interrupted", err=True)
        return 130
    except OSError as exc:  # a folder that is a file, a read-only or full disk, ...: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(printable(f"mlplab: error: {where}{exc.strerror or exc}"), err=True)
        return 2
    except MemoryError:
        typer.echo("mlplab: error: out of memory (a smaller network, batch or dataset may fit)", err=True)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # the CLI framework's usage errors (typer >= 0.29 vendors click)
        kind = type(exc).__name__
        if kind == "Exit":
            return int(getattr(exc, "exit_code", 0) or 0)
        if kind == "Abort":
            typer.echo("mlplab: aborted", err=True)
            return 130
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None and getattr(ctx, "command_path", "") else ""
            message = " ".join(str(exc.format_message()).split())  # one line
            typer.echo(printable(f"mlplab: error: {where}{message} (see --help)"), err=True)
            return int(exc.exit_code)
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
