"""The ``mlplab`` command line: a thin layer over the library.

Every command is one function whose docstring is its help. Errors the user can cause are
:class:`mlplab.errors.MlplabError`; :func:`main` prints them as one line on stderr and exits
with their exit code (2), never with a traceback.
"""

from __future__ import annotations

import sys

import typer

from mlplab.errors import MlplabError

app = typer.Typer(
    name="mlplab",
    help="Neural networks from scratch in NumPy, and the experiments that teach how they learn.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    """Entry point of the console script. Returns the exit code."""
    _register_subcommands()
    try:
        rv = app(args=argv, prog_name="mlplab", standalone_mode=False)
        # With standalone_mode=False the framework returns the code of a ``typer.Exit`` it caught.
        if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
            if rv == 130:  # typer turns a KeyboardInterrupt into Exit(130)
                typer.echo("mlplab: interrupted", err=True)
            return rv
    except MlplabError as exc:
        typer.echo(f"mlplab: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("mlplab: interrupted", err=True)
        return 130
    except OSError as exc:  # a folder that is a file, a read-only or full disk, ...: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"mlplab: error: {where}{exc.strerror or exc}", err=True)
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
            typer.echo(f"mlplab: error: {where}{message} (see --help)", err=True)
            return int(exc.exit_code)
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
