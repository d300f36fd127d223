"""Regression tests for the QA round 25 findings on the experiments (digits data: fast).

1. a folder holds one resolved spec; 2. spec keys a runner does not read are refused;
3. damaged cached cells run again; 4. the PyTorch row's inference time is PyTorch's;
5. --resume refuses options that would change the experiment; 6. duplicate cells are refused
by spec validation; 7. README's inference figure names its command; 8. textbook_eval's docstring.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mlplab.config import read_toml
from mlplab.errors import ConfigError
from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import from_dict, load_spec
from mlplab.experiments.sweep import CELL_FILE
from tinyspecs import TWO_HIDDEN, ovr

OVR = ovr()

TWO = TWO_HIDDEN


#: Model 2 alone: no key of the NumPy models' (the spec would be refused for keys no cell reads)
MODEL2 = """
name = "model2-tiny"
runner = "two-hidden-layers"
protocol = "corrected"
[data]
dataset = "digits"
max_train_samples = 400
max_test_samples = 200
[split]
kind = "sklearn"
[preprocessing]
scaling = "symmetric"
[model]
hidden = [8, 8]
hidden_activation = "sigmoid"
[training]
batch_size = 100
epochs = 2
seed = 123
[options]
models = ["model2-torch", "model2-mlplab"]
"""


def _write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _main(capsys, *args):
    from mlplab.cli import main

    rc = main(["experiment", "run", *map(str, args)])
    return rc, capsys.readouterr().err


def _one_line_error(rc, err, *fragments):
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- 1: one resolved spec per folder


def test_folder_of_another_resolved_spec_is_refused_before_anything_is_written(tmp_path, capsys):
    spec = _write(tmp_path, OVR)
    out = tmp_path / "full"
    assert _main(capsys, spec, "--out", out)[0] == 0
    before = _snapshot(out)
    # --quick into the full run's folder
    rc, err = _main(capsys, spec, "--quick", "--out", out)
    _one_line_error(rc, err, f"--out {out}: holds another run of 'ovr-tiny'", "quick true vs false",
                    "training.epochs 3 vs 5", f"--resume {out}")
    # an edited copy of the spec, and another --protocol
    edited = _write(tmp_path, OVR.replace("lrs = [0.01, 0.5]", "lrs = [0.01, 0.2]"), "edited.toml")
    rc, err = _main(capsys, edited, "--out", out)
    _one_line_error(rc, err, "options.lrs [0.01, 0.2] vs [0.01, 0.5]")
    rc, err = _main(capsys, spec, "--protocol", "corrected", "--out", out)
    _one_line_error(rc, err, 'protocol "corrected" vs "both"')
    with pytest.raises(ConfigError, match="holds another run"):
        run_experiment(load_spec(spec, quick=True), out)
    assert _snapshot(out) == before
    # the same spec again: every cell loads from the cache, the report is written again
    rc, err = _main(capsys, spec, "--out", out)
    summary = json.loads((out / "summary.json").read_text())
    assert rc == 0 and all(c["cached"] for c in summary["cells"])
    assert [c["result"]["models"] for c in summary["cells"]] == \
        [c["result"]["models"] for c in json.loads(before["summary.json"])["cells"]]
    # and its resolved spec is the same spec: --resume continues it
    assert _main(capsys, "--resume", out)[0] == 0


# ----------------------------------------------------------------------------- 2: keys a runner does not read


@pytest.mark.parametrize("edit, fragment", [
    (lambda t: t + '[sweep]\n"training.epochs" = [1, 2, 3]\n', "[sweep] is not used by runner 'ovr-logistic'"),
    (lambda t: t.replace('dataset = "digits"', 'dataset = "digits"\nmax_train_samples = 100'),
     "data.max_train_samples is not used by runner 'ovr-logistic'"),
    (lambda t: t.replace('dataset = "digits"', 'dataset = "digits"\nmax_test_samples = 50'),
     "data.max_test_samples is not used by runner 'ovr-logistic'"),
    (lambda t: t.replace('kind = "canonical"', 'kind = "sklearn"'),
     "split.kind = 'sklearn': runner 'ovr-logistic' always uses 'canonical'"),
    (lambda t: t.replace('dtype = "float64"', 'dtype = "float64"\nscaling = "symmetric"'),
     "preprocessing.scaling = 'symmetric': runner 'ovr-logistic' always uses 'unit'"),
    (lambda t: t.replace("batch_size = 0", "batch_size = 10"),
     "training.batch_size = 10: runner 'ovr-logistic' always uses 0"),
    (lambda t: t.replace("seed = 0", "seed = 0\nlr = 0.3"), "training.lr is not used by runner 'ovr-logistic' "
                                                            "(its learning rates are options.lrs)"),
    (lambda t: t + "[model]\nhidden = [8]\n", "model.hidden is not used by runner 'ovr-logistic'"),
    (lambda t: t.replace("training = { epochs = 3 }", "training = { epochs = 3, batch_size = 10 }"),
     "s.toml [quick]: training.batch_size = 10"),
])
def test_ovr_refuses_keys_it_does_not_read(tmp_path, capsys, edit, fragment):
    spec = _write(tmp_path, edit(OVR))
    out = tmp_path / "o"
    rc, err = _main(capsys, spec, "--quick", "--out", out)
    _one_line_error(rc, err, str(spec), fragment)
    assert not out.exists()


def test_two_hidden_replay_constants_refused_only_where_the_replay_runs(tmp_path):
    relu = _write(tmp_path, TWO.replace('hidden_activation = "sigmoid"', 'hidden_activation = "relu"'))
    with pytest.raises(ConfigError, match=r"s\.toml: model\.hidden_activation = 'relu': runner 'two-hidden-layers' "
                                          r"always uses 'sigmoid' here \(the as-published replay hard-codes"):
        load_spec(relu)
    with pytest.raises(ConfigError, match="model.hidden_activation = 'relu'"):
        load_spec(relu, overrides={"protocol": "as-published"})
    assert load_spec(relu, overrides={"protocol": "corrected"}).sections["model"]["hidden_activation"] == "relu"
    std = _write(tmp_path, TWO.replace("std = 0.1", "std = 0.2"), "std.toml")
    with pytest.raises(ConfigError, match=r"model\.init_params = \{'std': 0\.2\}"):
        load_spec(std)
    # the replay's own batch dropping is not a setting of the corrected cells
    drop = _write(tmp_path, TWO.replace("seed = 123\n[options]", "seed = 123\ndrop_last = true\n[options]"), "d.toml")
    assert load_spec(drop).protocol == "both"
    with pytest.raises(ConfigError, match=r"d\.toml: training\.drop_last is not used by runner 'two-hidden-layers'"):
        load_spec(drop, overrides={"protocol": "corrected"})
    # Model 1's layers are an option
    m1 = _write(tmp_path, TWO.replace('models = ["two-hidden"]', 'models = ["model1"]'), "m1.toml")
    with pytest.raises(ConfigError, match=r"model\.hidden is not used .*options\.model1_hidden"):
        load_spec(m1)


def test_every_builtin_loads_under_every_protocol():
    from mlplab.experiments.spec import builtin_names

    for name in builtin_names():
        for protocol in ("as-published", "corrected", "both"):
            for quick in (False, True):
                load_spec(name, quick=quick, overrides={"protocol": protocol})


def test_generic_sweep_of_an_option_it_does_not_have_is_refused(tiny_spec):
    raw = read_toml(tiny_spec)
    raw["sweep"]["options.foo"] = [1, 2]
    with pytest.raises(ConfigError, match=r"tiny\.toml: sweep\.options\.foo: runner 'generic' has no option 'foo'"):
        from_dict(raw, origin=str(tiny_spec))


def test_reports_and_saved_spec_say_which_keys_reach_which_cells(tmp_path):
    out = tmp_path / "t"
    summary = run_experiment(load_spec(_write(tmp_path, TWO)), out)
    md = (out / "report.md").read_text()
    assert "### Spec keys per cell" in md
    per_cell = summary["spec_keys_per_cell"]
    assert set(per_cell) == {"two-hidden/as-published", "two-hidden/corrected"}
    assert 'model.hidden_activation = "sigmoid"' in per_cell["two-hidden/as-published"]["uses"]
    assert "model.*" in per_cell["two-hidden/corrected"]["reads"]
    assert "model.hidden_activation" not in per_cell["two-hidden/as-published"]["reads"]
    assert summary["spec_keys"]["fixed"]["model.loss"] == "mse"
    head = " ".join(line[2:] for line in (out / "spec.toml").read_text().splitlines() if line.startswith("# "))
    assert head.startswith("The resolved spec of this run") and "Runner 'two-hidden-layers': the cells read" in head
    ovr = run_experiment(load_spec(_write(tmp_path, OVR, "o.toml")), tmp_path / "o")
    assert ovr["spec_keys"]["read"] == ["data.data_dir", "data.dataset", "preprocessing.dtype", "training.epochs",
                                        "training.seed"]
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Spec keys (runner 'ovr-logistic'): the cells read data.data_dir" in md


# ----------------------------------------------------------------------------- 3: damaged cached cells


def test_damaged_cached_cell_runs_again_with_one_warning(tmp_path, capsys):
    spec = _write(tmp_path, OVR)
    out = tmp_path / "o"
    first = run_experiment(load_spec(spec), out)
    victim = out / first["cells"][0]["folder"]
    (victim / "weights.npz").write_text("garbage\n")
    (out / first["cells"][1]["folder"] / "metrics.json").unlink()
    rc, err = _main(capsys, spec, "--out", out)
    assert rc == 0 and "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 2, err
    assert warnings[0] == (f"mlplab: warning: cached cell 'digit=0' is damaged ({victim / 'weights.npz'}: changed "
                           "since the cell finished); running it again")
    assert "metrics.json: missing" in warnings[1]
    again = json.loads((out / "summary.json").read_text())
    assert not any(c["cached"] for c in again["cells"])
    assert [c["result"]["models"] for c in again["cells"]] == [c["result"]["models"] for c in first["cells"]]
    with np.load(victim / "weights.npz") as w:
        assert w["W"].shape == (64, 4)
    # from the library: a Python warning instead
    (victim / "history.csv").write_text("x\n")
    with pytest.warns(UserWarning, match="cached cell 'digit=0' is damaged .*history.csv: changed"):
        run_experiment(load_spec(spec), out)


def test_rewritten_cell_report_is_no_damage(tiny_spec, tmp_path, capsys):
    from mlplab.cli import main

    out = tmp_path / "t"
    first = run_experiment(load_spec(tiny_spec), out)
    folder = out / first["cells"][0]["folder"]
    (folder / "report.md").write_text("edited\n")
    assert main(["report", str(folder)]) == 0  # writes the cell's report and figures again
    again = run_experiment(load_spec(tiny_spec), out)
    assert all(c["cached"] for c in again["cells"])


def test_cells_cached_before_files_were_recorded(tmp_path, capsys):
    spec = _write(tmp_path, TWO)
    out = tmp_path / "t"
    first = run_experiment(load_spec(spec), out)
    folders = [out / c["folder"] for c in first["cells"]]

    def as_before(folder):  # cell.json as an older mlplab wrote it
        saved = json.loads((folder / CELL_FILE).read_text())
        saved.pop("files", None)
        (folder / CELL_FILE).write_text(json.dumps(saved))

    for folder in folders:
        as_before(folder)
    (folders[0] / "metrics.json").write_text("{bad")
    rc, err = _main(capsys, spec, "--out", out)
    assert rc == 0 and "Traceback" not in err, err
    assert f"cached cell {first['cells'][0]['name']!r} is damaged ({folders[0] / 'metrics.json'}: does not load)" \
        in err
    # a missing file cannot be noticed there: the report names it, on one line
    as_before(folders[0])
    (folders[0] / "metrics.json").unlink()  # the replay's, which the report reads
    rc, err = _main(capsys, spec, "--out", out)
    assert rc == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert line == (f"mlplab: error: {folders[0] / 'metrics.json'}: missing from a cached cell; delete that cell's "
                    "folder and run the command again")


# ----------------------------------------------------------------------------- 4: PyTorch's inference time


def test_torch_row_reports_pytorch_forward_time(tmp_path):
    pytest.importorskip("torch")
    from mlplab.experiments.protocols.common import num

    spec = _write(tmp_path, MODEL2)
    out = tmp_path / "m2"
    summary = run_experiment(load_spec(spec), out)
    header, rows = summary["comparison"]["header"], summary["comparison"]["rows"]
    assert header[-1] == "inference alone (s, forward pass over the whole test set, median of 5)"
    assert header[-2].startswith("published inference (s, forward pass + confusion matrix")
    by_cell = {c["name"]: c["result"] for c in summary["cells"]}
    torch_row = next(r for r in rows if r[0].startswith("Model 2 (PyTorch)"))
    mlplab_row = next(r for r in rows if r[0].startswith("Model 2 (mlplab)"))
    assert torch_row[-1] == f"{num(by_cell['model2-torch']['inference_s_all_torch'], 3)} (PyTorch)"
    assert mlplab_row[-1] == f"{num(by_cell['model2-mlplab']['inference_s_all'], 3)} (mlplab)"
    assert "PyTorch's own forward pass" in (out / "report.md").read_text()


# ----------------------------------------------------------------------------- 5: --resume


def test_resume_refuses_options_that_change_the_experiment(tmp_path, capsys):
    spec = _write(tmp_path, OVR)
    out = tmp_path / "o"
    assert _main(capsys, spec, "--quick", "--out", out)[0] == 0
    before = _snapshot(out)
    for extra, named in ((["--seeds", "2"], "--seeds"), (["--seeds", "1"], "--seeds"), (["--quick"], "--quick"),
                         (["--protocol", "corrected"], "--protocol"), (["--data-dir", tmp_path], "--data-dir"),
                         (["--quick", "--seeds", "3"], "--seeds, --quick")):
        rc, err = _main(capsys, "--resume", out, *extra)
        _one_line_error(rc, err, f"mlplab: error: --resume DIR continues DIR with its own spec and seeds: {named} "
                                 "would change the experiment")
    assert _snapshot(out) == before
    # options that do not change the results
    rc, err = _main(capsys, "--resume", out, "--threads", "2", "--checkpoint-every", "5")
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and all(c["cached"] for c in summary["cells"])


def test_resume_help_names_the_refused_options(capsys, monkeypatch):
    from mlplab.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["experiment", "run", "--help"]) == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())
    assert "(NAME, --out, --seeds, --quick, --protocol, --data-dir) are refused with it" in text


# ----------------------------------------------------------------------------- 6: duplicate cells


@pytest.mark.parametrize("text, fragment", [
    (OVR.replace("digits = [0, 1]", "digits = [0, 0]"), "options.digits = [0, 0] holds 0 twice"),
    (OVR.replace("lrs = [0.01, 0.5]", "lrs = [0.5, 0.01, 0.5]"), "options.lrs = [0.5, 0.01, 0.5] holds 0.5 twice"),
    (OVR.replace('inits = ["uniform01", "zeros"]', 'inits = ["zeros", "zeros"]'), "options.inits"),
    (TWO.replace('models = ["two-hidden"]', 'models = ["two-hidden", "two-hidden"]'), "options.models"),
    (TWO.replace('models = ["two-hidden"]', 'models = ["two-hidden"]\nmodel1_hidden = [50, 50]'), None),
])
def test_duplicate_cells_refused_by_spec_validation(tmp_path, capsys, text, fragment):
    spec = _write(tmp_path, text)
    out = tmp_path / "o"
    if fragment is None:  # a repeated layer width is no repeated cell
        load_spec(spec)
        return
    rc, err = _main(capsys, spec, "--out", out)
    _one_line_error(rc, err, f"{spec}: {fragment}", "(each value makes its own cells)")
    assert not out.exists()


@pytest.mark.parametrize("axis, values, shown", [
    ("training.lr", "[0.05, 0.2, 0.05]", "0.05"),
    ("training.epochs", "[2, 2]", "2"),
    ("training.lr", "[1, 1.0]", "1.0"),
    ("model.hidden", "[[8], [16], [8]]", "[8]"),
])
def test_duplicate_sweep_values_refused(tiny_spec, tmp_path, capsys, axis, values, shown):
    text = tiny_spec.read_text().replace('"training.lr" = [0.05, 0.2]\n"model.hidden" = [[8], [16]]',
                                         f'"{axis}" = {values}')
    spec = _write(tmp_path, text, "sw.toml")
    out = tmp_path / "o"
    rc, err = _main(capsys, spec, "--out", out)
    _one_line_error(rc, err, f"{spec}: sweep.{axis} holds {shown} twice")
    assert not out.exists()


# ----------------------------------------------------------------------------- 7: README's inference figure


def test_readme_inference_figures_name_their_command():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "1.04 s" not in readme  # a stale figure no committed command reproduced
    (para,) = [" ".join(p.split()) for p in re.split(r"\n\s*\n|\n- ", readme) if "2.35 s" in p]
    assert "the report's published 2.35 s (PyTorch: 1.08 s)" in para
    assert "`mlplab experiment run two-hidden-layers --out runs/e1` measures it" in para


# ----------------------------------------------------------------------------- 8: textbook_eval


def test_textbook_eval_states_when_order_matters():
    from mlplab.experiments.protocols.two_hidden import textbook_eval
    from mlplab.network import MLP

    net = MLP([4, 3, 3], "sigmoid", "sigmoid", "mse", init="normal", seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(250, 4)), rng.integers(0, 3, 250)
    perm = rng.permutation(250)
    full = textbook_eval(net, X[:200], y[:200])
    assert np.allclose(textbook_eval(net, X[:200][perm[perm < 200]], y[:200][perm[perm < 200]]), full)
    # 250 rows: the last 50 in the given order are left out, so the order changes the values
    assert textbook_eval(net, X, y) == textbook_eval(net, X[:200], y[:200])
    assert textbook_eval(net, X[perm], y[perm]) != textbook_eval(net, X, y)
    doc = " ".join(textbook_eval.__doc__.split())
    assert "order-independent" not in doc and "n % 100" in doc and "depend on that order" in doc
