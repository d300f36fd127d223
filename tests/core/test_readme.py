"""The documentation's examples work: every ``mlplab`` command in README.md parses with the real
command line, every benchmark command named in README.md and BENCHMARKS.md exists with the
options it is given, and the README's Python tour runs (on real MNIST, with fewer epochs)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md"]


def _blocks(text, lang):
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def _readme_cli_commands():
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in _blocks(text, "sh"):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            for part in line.split(" ; "):
                lines.append(part)
    lines += re.findall(r"`(mlplab [^`]*)`", text)
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[:1] == ["mlplab"]:
            commands.append(words[1:])
    return commands


def _parse_only(args):
    """Parse ``args`` through the real command tree without running any command: an unknown
    command or option, or a bad value, raises the CLI framework's usage error."""
    import typer

    from mlplab import cli

    cli._register_subcommands()
    cmd = typer.main.get_command(cli.app)
    ctx = cmd.make_context("mlplab", list(args))
    names = []
    while hasattr(cmd, "resolve_command"):  # a group: descend into the named subcommand
        protected = getattr(ctx, "_protected_args", None)  # the subcommand's name (click >= 8.2)
        if protected is None:
            protected = getattr(ctx, "protected_args", None) or []
        rest = [*protected, *ctx.args]
        if not rest:
            break
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        names.append(name)
        ctx = cmd.make_context(name, rest, parent=ctx)
    return names


CLI = _readme_cli_commands()


def test_readme_names_the_commands():
    assert len(CLI) >= 15
    assert {c[0] for c in CLI} >= {"train", "evaluate", "predict", "gradcheck", "data", "report", "compare",
                                  "experiment"}


@pytest.mark.parametrize("args", CLI, ids=[" ".join(c)[:60] for c in CLI])
def test_readme_command_parses(args):
    names = _parse_only(args)
    assert names and names[0] == args[0]


def test_a_wrong_option_does_not_parse():
    with pytest.raises(Exception, match="no_such_option|No such option"):
        _parse_only(["train", "--no-such-option", "1"])


def _benchmark_commands():
    found = set()
    for doc in DOCS:
        for script, rest in re.findall(r"python (benchmarks/\w+\.py)([^`|)\n]*)", doc.read_text()):
            opts = tuple(sorted(set(re.findall(r"(--[a-z][a-z0-9-]*)", rest))))
            found.add((doc.name, script, opts))
    return sorted(found)


BENCH = _benchmark_commands()


def test_docs_name_benchmark_commands():
    assert len({s for _, s, _ in BENCH}) >= 6


@pytest.mark.parametrize("script", sorted({s for _, s, _ in BENCH}))
def test_benchmark_commands_in_docs_exist_with_their_options(script):
    assert (ROOT / script).is_file(), script
    out = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    for doc, s, opts in BENCH:
        if s == script:
            missing = [o for o in opts if o not in out.stdout]
            assert not missing, f"{doc} gives {script} options its --help does not list: {missing}"


# the tour with fewer epochs: what it shows, not how long it trains
FASTER = [("epochs=50", "epochs=1"), ("max_iter=20", "max_iter=1"), ("epochs=1000", "epochs=2")]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_readme_python_tour_runs(mnist_dir, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    code = "\n".join(_blocks((ROOT / "README.md").read_text(), "python"))
    for old, new in FASTER:
        assert old in code, f"the README tour no longer has {old!r}: update FASTER"
        code = code.replace(old, new)
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(mnist_dir))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert (tmp_path / "model.npz").is_file() and (tmp_path / "clf.npz").is_file()
    history = scope["history"]
    assert len(history.loss) == 1 and history.val_accuracy[0] > 0.5 and scope["clf"].n_iter_ == 1
    assert scope["errors"] == [None, None, None]
    assert type(scope["torch_model"]).__name__ == "Sequential"


def test_readme_long_train_command_is_the_same_run_as_its_toml_file(monkeypatch, tmp_path):
    """README says ``train --config configs/textbook-2hidden.toml`` is "the same" as the long command."""
    import mlplab.runs
    from mlplab.cli import main

    seen = []

    def capture(cfg, out, **kwargs):
        seen.append(cfg)
        return {}

    monkeypatch.setattr(mlplab.runs, "train_run", capture)
    monkeypatch.setattr("mlplab.cli_train._print_metrics", lambda metrics, out: None)
    trains = [c for c in CLI if c[0] == "train"]
    long_form = next(c for c in trains if "--hidden" in c and "--config" not in c)
    from_file = next(c for c in trains if "--config" in c)
    monkeypatch.chdir(ROOT)
    assert main(long_form) == 0 and main(from_file) == 0
    assert seen[0] == seen[1]
