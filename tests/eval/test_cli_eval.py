"""``mlplab report`` and ``mlplab compare``, invoked in-process."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from mlplab import cli_eval
from mlplab.report import FIGURES, RunFolderError


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    cli_eval.register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_commands(app, runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "report" in result.output and "compare" in result.output


def test_report_command(app, runner, run_dir):
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "report.md" in result.output and "report.html" in result.output
    assert f"{len(FIGURES)} written" in result.output
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()


def test_compare_command(app, runner, two_runs, tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *map(str, two_runs), "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Run comparison" in result.output
    assert "run-a" in result.output and "run-b" in result.output and "accuracy" in result.output
    assert (out / "comparison.png").is_file() and (out / "comparison.md").is_file()


def test_missing_metrics_is_a_clean_error(app, runner, run_dir):
    (run_dir / "metrics.json").unlink()
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code != 0
    assert isinstance(result.exception, RunFolderError)  # cli.main turns this into one line, exit 2
    assert "metrics.json" in str(result.exception)


def _main():
    try:
        import mlplab.cli_data
        import mlplab.cli_train  # noqa: F401
        from mlplab.cli import _register_subcommands, main  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"mlplab.cli.main not usable yet ({exc})")
    return main


def test_through_main(run_dir, capsys):
    main = _main()
    assert main(["report", str(run_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    (run_dir / "metrics.json").unlink()
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlplab: error:") and "metrics.json" in err and "Traceback" not in err
