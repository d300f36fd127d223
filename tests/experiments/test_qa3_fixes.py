"""Regression tests for the QA round 3 findings on the experiment runner (digits data: fast)."""

import json
import os

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from mlplab.cli_experiment import register
from mlplab.config import read_toml
from mlplab.experiments.runner import run_experiment
from mlplab.experiments.spec import load_spec
from tinyspecs import TWO_HIDDEN, ovr, relu


def _app():
    app = typer.Typer()
    register(app)
    return app


def _invoke(*args):
    return CliRunner().invoke(_app(), ["experiment", "run", *map(str, args)])


# ----------------------------------------------------------------------------- 1: --resume keeps --quick


def test_resume_of_quick_run_stays_quick(tmp_path, tiny_spec):
    spec = tiny_spec
    spec.write_text(spec.read_text() + '[quick]\ntraining = { epochs = 1, record_epochs = [1] }\nsweep = { "training.lr" = [0.1] }\n')
    out = tmp_path / "e"
    r = _invoke(spec, "--quick", "--out", out)
    assert r.exit_code == 0, r.output
    assert read_toml(out / "spec.toml")["quick"] is True
    r = _invoke("--resume", out)
    assert r.exit_code == 0, r.output
    assert "2 cells (2 cached)" in r.output
    assert "Mode: quick" in (out / "report.md").read_text()
    assert json.loads((out / "summary.json").read_text())["quick"] is True
    assert read_toml(out / "spec.toml")["quick"] is True
    # a resolved spec still loads as what it was
    assert load_spec(out / "spec.toml").quick is True
    assert load_spec(out / "spec.toml", quick=True).quick is True


def test_resolved_full_spec_refuses_quick(tmp_path, tiny_spec):
    from mlplab.errors import ConfigError

    out = tmp_path / "e"
    run_experiment(load_spec(tiny_spec), out)
    assert load_spec(out / "spec.toml").quick is False
    with pytest.raises(ConfigError, match="spec.toml: quick = false"):
        load_spec(out / "spec.toml", quick=True)


# ----------------------------------------------------------------------------- 3: mnist-best y-limits


def test_mnist_best_figure_limits_include_every_point(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import matplotlib.figure

    from mlplab.experiments.protocols import mnist_best

    assert mnist_best.accuracy_ylim([95.5, 98.0, 99.1]) == (95.0, 100.0)
    lo, hi = mnist_best.accuracy_ylim([88.3, 93.7])
    assert lo <= 88.3 and hi == 100.0
    # the figure the report draws: every point of a quick run (below 95 %) is inside the axes
    seen = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: seen.append(fig.axes[0].get_ylim()) or real(fig, *a, **k))
    results = [SimpleNamespace(cell=SimpleNamespace(name=f"fast/{fw}", tags={"recipe": "fast", "framework": fw}),
                               result={"test_accuracy": 0.93, "training_time_s": 1.0, "time_curve": curve})
               for fw, curve in (("mlplab", [[0.5, 0.883], [1.0, 0.921]]), ("sklearn", [[0.7, 0.9], [1.4, 0.937]]))]
    spec = SimpleNamespace(options={"targets": {"fast": 0.98}, "fast_time_budget_s": 30.0})
    (tmp_path / "figures").mkdir()
    mnist_best.report(spec, results, tmp_path, {})
    assert (tmp_path / "figures" / "accuracy_vs_seconds.png").exists()
    (lo, hi), = seen
    assert lo <= 88.3 and hi >= 93.7


# ----------------------------------------------------------------------------- ovr-logistic on digits

def _ovr(tmp_path, digits="[0, 1]", n_pos=50):
    p = tmp_path / "o2.toml"
    p.write_text(ovr(digits, n_pos))
    return p


def _main(capsys, *args):
    from mlplab.cli import main

    rc = main(["experiment", "run", *map(str, args)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("digits, n_pos, fragment", [
    ("[0, 11]", 50, "o2.toml: options.digits = [0, 11]: 11 not a class"),
    ("[0, 1]", 100000, "o2.toml: options.n_pos = 100000 is more than digit 0 has"),
])
def test_ovr_bad_digits_and_n_pos_refused_before_any_cell(tmp_path, capsys, digits, n_pos, fragment):
    from mlplab.errors import ConfigError

    spec = _ovr(tmp_path, digits, n_pos)
    out = tmp_path / "bad"
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        run_experiment(load_spec(spec), out)
    assert not out.exists()
    rc, err = _main(capsys, spec, "--quick", "--out", out)
    assert rc == 2 and fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# ----------------------------------------------------------------------------- 11: ovr-logistic --protocol


def _table(md, first_header_cell):
    """The rows (lists of cells) of the markdown table whose header starts with ``first_header_cell``."""
    lines = md.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(f"| {first_header_cell}"))
    rows = []
    for line in lines[i:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[0], rows[2:]


def test_ovr_protocol_selects_what_runs_and_is_reported(tmp_path):
    spec_file = _ovr(tmp_path)
    both = run_experiment(load_spec(spec_file), tmp_path / "both")
    assert {m["init"] for m in both["models"]} == {"uniform01", "zeros"}
    # as-published: the report's U(0,1) init only, no corrected columns
    ap = run_experiment(load_spec(spec_file, overrides={"protocol": "as-published"}), tmp_path / "ap")
    assert {m["init"] for m in ap["models"]} == {"uniform01"}
    header, rows = _table((tmp_path / "ap" / "report.md").read_text(), "digit")
    assert "Protocol: as-published" in (tmp_path / "ap" / "report.md").read_text()
    assert all(r[header.index("corrected: AUC")] == "not run (protocol as-published)" for r in rows)
    assert all(r[2] != "not run (protocol corrected)" for r in rows)
    # corrected: the same cells as "both" (a folder holds one resolved spec, so another --out), no
    # reproduced-as-published column
    from mlplab.experiments.runner import plan

    corrected = load_spec(spec_file, overrides={"protocol": "corrected"})
    assert [c.key for c in plan(corrected)] == [c["key"] for c in both["cells"]]
    co = run_experiment(corrected, tmp_path / "co")
    assert co["models"] == both["models"]
    header, rows = _table((tmp_path / "co" / "report.md").read_text(), "digit")
    assert all(r[2] == "not run (protocol corrected)" for r in rows)
    assert all(r[header.index("corrected: AUC")].replace(".", "").isdigit() for r in rows)


def test_ovr_as_published_without_its_init_is_refused(tmp_path):
    from mlplab.errors import ConfigError

    p = tmp_path / "o3.toml"
    p.write_text(ovr("[0]").replace('inits = ["uniform01", "zeros"]', 'inits = ["zeros"]'))
    with pytest.raises(ConfigError, match="o3.toml: protocol 'as-published'.*options.inits"):
        load_spec(p, overrides={"protocol": "as-published"})


def test_ovr_without_the_reports_configuration_says_so_and_no_digits_is_refused(tmp_path):
    from mlplab.errors import ConfigError

    p = tmp_path / "o4.toml"
    p.write_text(ovr("[0]").replace("lrs = [0.01, 0.5]", "lrs = [0.5]"))
    run_experiment(load_spec(p), tmp_path / "o4")
    header, rows = _table((tmp_path / "o4" / "report.md").read_text(), "digit")
    assert len(rows) == 1 and rows[0][0] == "none" and "lr 0.01, U(0,1) init) is not among" in rows[0][1]
    p.write_text(ovr("[]"))
    with pytest.raises(ConfigError, match="options.digits"):
        load_spec(p)


# ----------------------------------------------------------------------------- 13: ovr Cells table label


def test_ovr_cells_table_says_mean_over_models(tmp_path, tiny_spec):
    run_experiment(load_spec(_ovr(tmp_path)), tmp_path / "o", seeds=2)
    md = (tmp_path / "o" / "report.md").read_text()
    header, _ = _table(md, "cell | status")
    assert header[3] == "mean test accuracy over the 4 lr x init models (%)"
    header, _ = _table(md, "group")  # the mean ± sd table over the seeds
    assert header[1] == "mean test accuracy over the 4 lr x init models (%)"
    # other experiments keep their own label
    run_experiment(load_spec(tiny_spec), tmp_path / "t")
    header, _ = _table((tmp_path / "t" / "report.md").read_text(), "cell | status")
    assert header[3] == "test accuracy (%)"


# ----------------------------------------------------------------------------- 7: headline tables over seeds

RELU = relu("[0.05]")


def _pm(vals, scale=100.0, digits=2):
    from mlplab.experiments.protocols.common import pm
    from mlplab.experiments.sweep import mean_sd

    return pm(mean_sd(vals), scale, digits)


def test_relu_softmax_headline_tables_show_mean_sd_over_seeds(tmp_path):
    p = tmp_path / "relu.toml"
    p.write_text(RELU)
    summary = run_experiment(load_spec(p), tmp_path / "r", seeds=2)
    md = (tmp_path / "r" / "report.md").read_text()
    cells = {c["name"]: c["result"] for c in summary["cells"]}
    co = [cells["corrected/lr=0.05/seed=0"], cells["corrected/lr=0.05/seed=1"]]
    ap = [cells["as-published/lr=0.05/seed=0"], cells["as-published/lr=0.05/seed=1"]]
    header, rows = _table(md, "lr | epochs")
    assert "mean ± sd over 2 seeds" in header[5]
    row = next(r for r in rows if r[1] == "3")
    assert row[5] == (f"{_pm([c['snapshots']['3']['train_accuracy'] for c in co])} / "
                      f"{_pm([c['snapshots']['3']['test_accuracy'] for c in co])}")
    assert row[4] == _pm([c["snapshots"]["3"]["test_accuracy"] for c in ap])
    header, rows = _table(md, "protocol | lr")
    assert "mean ± sd over 2 seeds" in header[2]
    corrected = next(r for r in rows if r[0] == "corrected")
    assert corrected[2] == _pm([c["test_accuracy"] for c in co]) and "±" in corrected[2]


def test_ovr_headline_table_shows_mean_sd_over_seeds(tmp_path):
    summary = run_experiment(load_spec(_ovr(tmp_path, "[0]")), tmp_path / "o", seeds=2)
    md = (tmp_path / "o" / "report.md").read_text()
    models = [m for c in summary["cells"] for m in c["result"]["models"] if m["lr"] == 0.01 and m["init"] == "uniform01"]
    assert len(models) == 2
    header, rows = _table(md, "digit")
    assert "mean ± sd over 2 seeds" in header[2]
    assert rows[0][2] == (f"{_pm([m['train_accuracy'] for m in models])} / "
                          f"{_pm([m['test']['accuracy'] for m in models])}")
    assert rows[0][header.index("corrected: AUC, mean ± sd over 2 seeds")] == \
        _pm([m["test"]["roc_auc"] for m in models], 1.0, 4)
    assert "first seed (seed 0) of the 2 seeds" in md


# ----------------------------------------------------------------------------- 8: two-hidden replay limits

# the replay's own drop_last stated, and the report's published curve
TWO = (TWO_HIDDEN.replace("seed = 123\n[options]", "seed = 123\ndrop_last = true\n[options]")
       + '[report.published]\ncurve = "84.89/84.79 87.68/87.52"\n')


def test_two_hidden_replay_honours_sample_limits(tmp_path):
    p = tmp_path / "two.toml"
    p.write_text(TWO)
    summary = run_experiment(load_spec(p), tmp_path / "t")
    sizes = {}
    for c in summary["cells"]:
        with np.load(tmp_path / "t" / c["folder"] / "predictions.npz") as pred:
            sizes[c["name"]] = len(pred["y_true"])
    assert sizes == {"two-hidden/as-published": 200, "two-hidden/corrected": 200}
    rep = next(c for c in summary["cells"] if c["name"] == "two-hidden/as-published")["result"]
    assert rep["classification_report"]["macro avg"]["support"] == 200
    # the replay trained on the 400-row subset, as the corrected cell did
    folder = tmp_path / "t" / next(c["folder"] for c in summary["cells"] if "as-published" in c["name"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["split"].endswith("subsets 400/200")
    assert metrics["train"]["n_samples"] == 400
    assert "every cell, the replay included, ran on these subsets" in (tmp_path / "t" / "report.md").read_text()
    # the replay's model file records its split and subsets: evaluate scores it on the same rows
    from mlplab.cli import main

    assert main(["evaluate", str(folder / "model.npz"), "--out", str(tmp_path / "ev"), "--no-report"]) == 0
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["test"]["n_samples"] == 200 and again["train"]["n_samples"] == 400
    assert again["test"]["accuracy"] == metrics["test"]["accuracy"]


# ----------------------------------------------------------------------------- 2: --seeds reuses finished cells


@pytest.mark.filterwarnings("ignore:--out .* held this experiment with --seeds")  # (the warning itself: test_sweep_qa26)
def test_seeds_reuse_finished_cells_with_the_same_key(tiny_spec, tmp_path):
    from mlplab.experiments.sweep import CELL_FILE

    def spec():
        s = load_spec(tiny_spec)
        s.sweep = {"training.lr": [0.1, 0.2]}
        return s

    out = tmp_path / "s"
    one = run_experiment(spec(), out)
    stamps = {c["key"]: os.stat(out / c["folder"] / CELL_FILE).st_mtime_ns for c in one["cells"]}
    two = run_experiment(spec(), out, seeds=2)
    assert len(two["cells"]) == 4
    by_seed = {(c["group"], c["seed"]): c for c in two["cells"]}
    for c in one["cells"]:  # seed 7 (the spec's) of every group has the single run's config
        again = by_seed[(c["group"], 7)]
        assert again["key"] == c["key"] and again["cached"] and again["folder"] == c["folder"]
        assert os.stat(out / again["folder"] / CELL_FILE).st_mtime_ns == stamps[c["key"]]
        assert again["result"] == c["result"]
    assert sum(c["cached"] for c in two["cells"]) == 2
    # and back: every cell is cached (seed 7 in either folder), nothing retrains
    back = run_experiment(spec(), out, seeds=1)
    assert all(c["cached"] for c in back["cells"])
    again = run_experiment(spec(), out, seeds=2)
    assert all(c["cached"] for c in again["cells"])
    # the report still lists every cell with the folder it was loaded from
    assert all((out / c["folder"] / CELL_FILE).exists() for c in again["cells"])
