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


def _register_subcommands() -> None:
    # Each sub-module adds its commands to ``app``; imported here so ``mlplab --help`` lists all.
    from mlplab import cli_data, cli_eval, cli_train  # noqa: F401

    for module in (cli_train, cli_data, cli_eval):
        module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code."""
    _register_subcommands()
    try:
        app(args=argv, prog_name="mlplab", standalone_mode=False)
    except MlplabError as exc:
        typer.echo(f"mlplab: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("mlplab: interrupted", err=True)
        return 130
    except SystemExit as exc:  # typer.Exit inside commands
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors and friends
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            typer.echo("mlplab: aborted", err=True)
            return 130
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
