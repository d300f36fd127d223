"""``mlplab data ...`` invoked in-process on a Typer app holding only the data commands."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from mlplab.cli_data import register
from mlplab.errors import ConfigError, DataError


@pytest.fixture
def app():
    a = typer.Typer(pretty_exceptions_enable=False)

    @a.callback()
    def main() -> None:  # a group, so "data" is a sub-command as in the real CLI
        pass

    register(a)
    return a


def run(app, *args):
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def test_help_lists_commands(app):
    r = run(app, "data", "--help")
    assert r.exit_code == 0
    for cmd in ("fetch", "info", "show", "list"):
        assert cmd in r.output


def test_list(app):
    r = run(app, "data", "list")
    assert r.exit_code == 0 and "fashion-mnist" in r.output and "digits" in r.output


def test_info_digits_table(app):
    r = run(app, "data", "info", "digits")
    assert r.exit_code == 0, r.output
    assert "class balance" in r.output and "checksums verified" in r.output and "1348 / 449" in r.output


def test_info_json(app, tmp_path, synth):
    synth.write(tmp_path / "d" / "mnist")
    r = run(app, "data", "info", "mnist", "--data-dir", str(tmp_path / "d"), "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["n_train"] == 30 and info["checksums_verified"] is True


def test_fetch_downloads_into_cache(app, tmp_path, synth, server, monkeypatch):
    from datahelpers import NAMES

    url = server.serve("m", {NAMES[k] + ".gz": synth.gz[k] for k in NAMES})
    monkeypatch.setenv("MLPLAB_MIRRORS", url)
    r = run(app, "data", "fetch", "mnist")
    assert r.exit_code == 0, r.output
    assert "checksums verified" in r.output and "downloaded into cache" in r.output
    assert len(list((tmp_path / "cache" / "mnist").glob("*.gz"))) == 4


def test_fetch_error_is_project_exception(app, tmp_path, synth):
    r = run(app, "data", "info", "mnist")
    assert isinstance(r.exception, DataError) and "downloading is disabled" in str(r.exception)
    r = run(app, "data", "info", "nonsense")
    assert isinstance(r.exception, DataError) and "valid names" in str(r.exception)


def test_show_writes_png(app, tmp_path):
    out = tmp_path / "grid.png"
    r = run(app, "data", "show", "digits", "--n", "9", "--out", str(out), "--split", "test", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_show_bad_options(app, tmp_path):
    r = run(app, "data", "show", "digits", "--split", "valid", "--out", str(tmp_path / "g.png"))
    assert isinstance(r.exception, ConfigError) and "--split" in str(r.exception)
    r = run(app, "data", "show", "digits", "--n", "0", "--out", str(tmp_path / "g.png"))
    assert isinstance(r.exception, ConfigError)
    r = run(app, "data", "show", "digits", "--out", str(tmp_path / "g.txt"))
    assert isinstance(r.exception, ConfigError) and "g.txt" in str(r.exception)
    assert not (tmp_path / "g.png").exists()


def test_show_refuses_an_unwritable_out_before_loading(app, tmp_path, monkeypatch):
    import mlplab.data

    monkeypatch.setattr(mlplab.data, "load_dataset", lambda *a, **k: pytest.fail("loaded the data first"))
    (tmp_path / "dir.png").mkdir()
    r = run(app, "data", "show", "digits", "--out", str(tmp_path / "dir.png"))
    assert isinstance(r.exception, ConfigError) and str(r.exception) == f"--out {tmp_path / 'dir.png'}: is a folder; give a file name"
    (tmp_path / "afile").write_text("x")
    r = run(app, "data", "show", "digits", "--out", str(tmp_path / "afile" / "x.png"))
    assert isinstance(r.exception, ConfigError) and "afile is a file, not a folder" in str(r.exception)
    r = run(app, "data", "show", "digits", "--seed", "-1", "--out", str(tmp_path / "g.png"))
    assert isinstance(r.exception, ConfigError) and str(r.exception) == "--seed -1: must be >= 0"


def test_digits_do_not_claim_a_checksum(app):
    r = run(app, "data", "fetch", "digits")
    assert r.exit_code == 0 and "bundled with scikit-learn (no checksum)" in r.output and "verified" not in r.output
    r = run(app, "data", "info", "digits", "--json")
    info = json.loads(r.output)
    assert info["checksums_verified"] is False and info["sha256"] == {}


def test_an_empty_dataset_name_is_not_the_current_folder(app, tmp_path, synth, monkeypatch):
    synth.write(tmp_path / "here")
    monkeypatch.chdir(tmp_path / "here")  # holds the four IDX files
    r = run(app, "data", "info", "")
    assert isinstance(r.exception, DataError) and str(r.exception).startswith("dataset name is empty")


def test_main_cli_prints_one_line_error(capsys):
    cli = pytest.importorskip("mlplab.cli")
    try:
        code = cli.main(["data", "info", "nonsense"])
    except ImportError as exc:  # the other command modules may not exist yet
        pytest.skip(f"main CLI not complete yet: {exc}")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mlplab: error: unknown dataset 'nonsense'") and err.count("\n") == 1
