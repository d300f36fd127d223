"""QA 25: `mlplab train`'s flags and TOML configs (layers, names, settings, resume, run folders),
`--train-metrics none`, and the help texts. Each test reproduces a defect the audit found."""

import json
import tomllib
import warnings

import numpy as np
import pytest

from mlplab.cli import main
from mlplab.errors import ConfigError, DivergenceError, TrainingInterrupted
from mlplab.initializers import get_initializer
from mlplab.network import MLP
from mlplab.schedules import Cosine, InverseScaling, ReduceOnPlateau
from mlplab.training import Callback, EarlyStopping, Trainer

SMALL = ["--dataset", "digits", "--hidden", "8", "--epochs", "2", "--quiet", "--no-report"]


def _train(out, *args):
    return main(["train", *args, "--out", str(out)])


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mlplab: error: ") and "Traceback" not in err, err
    return err


def _params(path):
    from mlplab.serialization import load_model

    return load_model(path).net.parameters()


def _interrupted_run(out, **training):
    """A run folder as an interrupted `mlplab train` leaves it: config.toml, history.csv and
    checkpoint.npz, no metrics.json."""
    from mlplab.runs import load_config, train_run

    cfg = load_config(None, {"data": {"dataset": "digits"}, "model": {"hidden": [8]},
                             "training": {"epochs": 3, **training}})

    def interrupt(trainer):
        trainer.interrupt_requested = True  # stops after the first minibatch

    with pytest.raises(TrainingInterrupted):
        train_run(cfg, out, trainer_hook=interrupt, report=False)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.toml", "history.csv"]


# -- 1. TOML keys whose default is None --------------------------------------------------------
def test_toml_keys_defaulting_to_none_apply_are_recorded_and_reproduce_the_run(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndataset = "digits"\ndata_dir = "{tmp_path}"\nmax_train_samples = 300\n'
                   'max_test_samples = 100\nvalidation_fraction = 0.2\n[model]\nhidden = [16]\n'
                   '[training]\nepochs = 30\nlr = 2.0\nearly_stopping_patience = 0\nthreads = 1\n')
    assert _train(tmp_path / "a", "-c", str(cfg), "--quiet", "--no-report") == 0
    saved = tomllib.loads((tmp_path / "a" / "config.toml").read_text())
    assert saved["data"]["data_dir"] == str(tmp_path)
    assert saved["data"]["max_train_samples"] == 300 and saved["data"]["max_test_samples"] == 100
    assert saved["training"]["early_stopping_patience"] == 0 and saved["training"]["threads"] == 1
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert a["test"]["n_samples"] == 100 and "training subset of 300" in a["split"]
    assert a["stop_reason"] and a["epochs_run"] < 30  # patience 0 stopped it early
    # the run's own config.toml gives the same run
    assert _train(tmp_path / "b", "-c", str(tmp_path / "a" / "config.toml"), "--quiet", "--no-report") == 0
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert (b["split"], b["epochs_run"], b["test"]["accuracy"]) == (a["split"], a["epochs_run"], a["test"]["accuracy"])
    for pa, pb in zip(_params(tmp_path / "a" / "model.npz"), _params(tmp_path / "b" / "model.npz")):
        assert np.array_equal(pa, pb)


def test_an_unset_flag_never_overrides_a_file_value():
    from mlplab.config import COMMAND_LINE, SCHEMA, resolve

    file_layer = {"data": {"max_train_samples": 5, "max_test_samples": 6}, "training": {"threads": 2}}
    unset = {section: dict.fromkeys(keys) for section, keys in SCHEMA.items()}  # every flag left out
    cfg = resolve(("c.toml", file_layer), (COMMAND_LINE, unset))
    assert (cfg["data"]["max_train_samples"], cfg["data"]["max_test_samples"], cfg["training"]["threads"]) == (5, 6, 2)


def test_a_toml_data_dir_naming_no_folder_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndata_dir = "{tmp_path / "nope"}"\n')
    assert _train(tmp_path / "o", "-c", str(cfg), *SMALL) == 2
    err = _one_line_error(capsys)
    assert str(cfg) in err and "data.data_dir" in err and "directory" in err
    assert not (tmp_path / "o").exists()


# -- 2. --train-metrics none -------------------------------------------------------------------
def test_train_metrics_none_records_the_loss_as_missing_and_completes_the_run(tmp_path):
    out = tmp_path / "o"
    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "3", "--train-metrics", "none",
                 "--quiet", "--out", str(out)]) == 0
    for name in ("config.toml", "history.csv", "metrics.json", "model.npz", "predictions.npz", "report.md"):
        assert (out / name).is_file(), name
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].split(",")[1] == "loss" and all(row.split(",")[1] == "" for row in rows[1:])
    from mlplab.serialization import load_model

    history = load_model(out / "model.npz").trainer_state["history"]
    assert history["loss"] == [None] * 3 and history["accuracy"] == [None] * 3


@pytest.mark.parametrize("args", [["--early-stopping", "2"], ["--schedule", "reduce_on_plateau"]])
def test_nothing_to_monitor_is_refused_before_anything_is_written(tmp_path, capsys, args):
    assert _train(tmp_path / "o", *SMALL, "--train-metrics", "none", *args) == 2
    assert "does not measure" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()
    # with validation data there is something to monitor
    assert _train(tmp_path / "v", *SMALL, "--train-metrics", "none", "--validation-fraction", "0.2", *args) == 0


def test_the_trainer_refuses_to_monitor_an_unmeasured_loss_and_feeds_no_nan(digits):
    X, y = digits
    net = MLP([64, 8, 10], seed=0)
    for kwargs in ({"callbacks": [EarlyStopping(monitor="loss")]}, {"schedule": ReduceOnPlateau()}):
        with pytest.raises(ConfigError, match="does not measure"):
            Trainer(net, train_metrics="none", **kwargs).fit(X, y, 2)
    with pytest.raises(ConfigError, match="val_loss"):
        Trainer(net, callbacks=[EarlyStopping(monitor="val_loss")]).fit(X, y, 2)

    seen = []

    class Observing(ReduceOnPlateau):
        def observe(self, value):
            seen.append(value)
            super().observe(value)

    class Logs(Callback):
        def on_epoch_end(self, trainer, logs):
            seen.append(logs["loss"])

    h = Trainer(net, train_metrics="none", schedule=Observing(), callbacks=[Logs()]).fit(X[:1000], y[:1000], 3,
                                                                                        X[1000:], y[1000:])
    assert h.loss == [None] * 3
    assert seen[1::2] == [None] * 3 and all(np.isfinite(v) for v in seen[0::2])  # val_loss observed


# -- 3. a folder holding an interrupted run ----------------------------------------------------
def test_an_interrupted_run_folder_is_refused_unless_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    _interrupted_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _train(out, "--dataset", "digits", "--hidden", "16", "--epochs", "2", "--lr", "1e300", "--quiet") == 2
    err = _one_line_error(capsys)
    assert "--resume" in err and "--out" in err and "checkpoint.npz" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing overwritten
    assert main(["train", "--resume", str(out), "--quiet", "--no-report"]) == 0
    assert (out / "metrics.json").exists() and not (out / "checkpoint.npz").exists()


def test_a_folder_with_a_config_but_no_results_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text("[training]\nepochs = 2\n")
    assert _train(out, *SMALL) == 2
    assert "config.toml" in _one_line_error(capsys)
    assert [p.name for p in out.iterdir()] == ["config.toml"]


def test_a_divergence_points_only_at_a_checkpoint_the_run_wrote(tmp_path):
    from mlplab.runs import load_config, train_run

    cfg = load_config(None, {"data": {"dataset": "digits"}, "model": {"hidden": [8]}, "training": {"epochs": 3}})

    class Diverge(Callback):
        def __init__(self, foreign):
            self.foreign = foreign

        def on_epoch_end(self, trainer, logs):
            if self.foreign:  # a checkpoint.npz appearing from elsewhere
                (tmp_path / "a" / "checkpoint.npz").write_bytes(b"not ours")
            if logs["epoch"] == 2:
                raise DivergenceError("loss exploded", 2)

    with pytest.raises(DivergenceError) as exc:
        train_run(cfg, tmp_path / "a", callbacks=[Diverge(foreign=True)], report=False)
    assert "checkpoint" not in str(exc.value)
    cfg["training"]["checkpoint_seconds"] = 1e-9  # a checkpoint after every epoch
    with pytest.raises(DivergenceError, match=r"the last good checkpoint is .*b.checkpoint\.npz"):
        train_run(cfg, tmp_path / "b", callbacks=[Diverge(foreign=False)], report=False)


# -- 4. settings of schedules, initialisers and optimizers --------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["--schedule", "plateau", "--schedule-param", "min_lr=inf"], "min_lr"),
    (["--schedule", "plateau", "--schedule-param", "min_delta=nan"], "min_delta"),
    (["--schedule", "plateau", "--schedule-param", "min_lr=-1"], "min_lr"),
    (["--schedule", "inverse_scaling", "--schedule-param", "power=inf"], "power"),
    (["--schedule", "cosine", "--schedule-param", "min_lr=-1"], "min_lr"),
    (["--schedule", "step", "--schedule-param", "step_size=" + "9" * 400], "step_size"),
    (["--init", "uniform", "--init-param", "low=-inf", "--init-param", "high=inf"], "low"),
    (["--init", "uniform", "--init-param", "low=-1e308", "--init-param", "high=1e308"], "range"),
    (["--init", "normal", "--init-param", "std=inf"], "std"),
    (["--init", "normal", "--init-param", "mean=nan"], "mean"),
    (["--init", "normal", "--init-param", "std=abc"], "std must be a number"),
    (["--init", "normal", "--init-param", "std=true"], "std must be a number"),
    (["--optimizer", "adam", "--optimizer-param", "eps=inf"], "eps"),
    (["--optimizer", "rmsprop", "--optimizer-param", "alpha=nan"], "alpha"),
])
def test_non_finite_or_meaningless_settings_are_refused_before_anything_is_written(tmp_path, capsys, args, needle):
    assert _train(tmp_path / "o", *SMALL, *args) == 2
    assert needle in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("make, kwargs", [
    (ReduceOnPlateau, {"min_delta": float("nan")}), (ReduceOnPlateau, {"min_lr": float("inf")}),
    (Cosine, {"min_lr": -0.1}), (InverseScaling, {"power": float("inf")}),
    (lambda **kw: get_initializer("normal", **kw), {"std": 0.0}),
    (lambda **kw: get_initializer("uniform", **kw), {"low": 1.0, "high": 1.0}),
    (lambda **kw: MLP([4, 3], init="normal", init_params=kw), {"std": "abc"}),
])
def test_the_library_refuses_the_same_settings(make, kwargs):
    with pytest.raises(ConfigError):
        make(**kwargs)


def test_the_trainer_never_sets_a_negative_or_non_finite_learning_rate(digits):
    from mlplab.schedules import Schedule

    X, y = digits

    class Falling(Schedule):
        name = "falling"

        def __call__(self, epoch, base_lr):
            return base_lr - 0.1 * epoch

    net = MLP([64, 8, 10], seed=0)
    tr = Trainer(net, lr=0.1, schedule=Falling())
    with pytest.raises(ConfigError, match="schedule 'falling' gave the learning rate -0.1"):
        tr.fit(X, y, 3)
    assert tr.optimizer.lr >= 0


# -- 5. names resolved to their registered spelling --------------------------------------------
def test_names_are_canonical_once_resolved_so_settings_apply(tmp_path):
    assert _train(tmp_path / "plain", *SMALL, "--optimizer", "adam", "--lr", "0.01") == 0
    assert _train(tmp_path / "wd", *SMALL, "--optimizer", "Adam", "--lr", "0.01", "--weight-decay", "0.5",
                  "--schedule", "Plateau", "--init", "Xavier", "--hidden-activation", "ReLU") == 0
    saved = tomllib.loads((tmp_path / "wd" / "config.toml").read_text())
    assert saved["training"]["optimizer"] == "adam" and saved["training"]["schedule"] == "reduce_on_plateau"
    assert saved["model"]["init"] == "glorot" and saved["model"]["hidden_activation"] == "relu"
    from mlplab.serialization import load_model

    assert load_model(tmp_path / "wd" / "model.npz").trainer_state["optimizer"]["config"]["weight_decay"] == 0.5
    plain, decayed = _params(tmp_path / "plain" / "model.npz")[0], _params(tmp_path / "wd" / "model.npz")[0]
    assert np.abs(decayed).sum() < np.abs(plain).sum()  # the decay shrank the weights
    assert _train(tmp_path / "m", *SMALL, "--optimizer", "SGD", "--momentum", "0.9") == 0


# -- 6. --resume and the options that would change the run -------------------------------------
@pytest.mark.parametrize("args, named", [
    (["--epochs", "5"], "--epochs"), (["--lr", "5"], "--lr"), (["--config", "missing.toml"], "--config"),
    (["--out", "elsewhere"], "--out"), (["--no-nesterov"], "--nesterov"), (["--init-param", "std=1"], "--init-param"),
    (["--threads", "1"], "--threads"), (["--checkpoint-seconds", "5"], "--checkpoint-seconds"),
    (["--dataset", "digits", "--hidden", "8"], "--dataset, --hidden"),
])
def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys, args, named):
    out = tmp_path / "run"
    _interrupted_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["train", "--resume", str(out), "--quiet", "--no-report", *args]) == 2
    err = _one_line_error(capsys)
    assert named in err and "--resume" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not (tmp_path / "elsewhere").exists()


# -- 7. huge integers in TOML ------------------------------------------------------------------
@pytest.mark.parametrize("text, key", [
    ("[training]\nlr = " + "9" * 400, "training.lr"),
    ("[model]\ndropout = " + "9" * 400, "model.dropout"),
    ("[training]\nepochs = " + "9" * 5000, "training.epochs"),
    ("[model]\nhidden = [16, " + "9" * 5000 + "]", "model.hidden[1]"),
    ("[training]\nthreads = " + "9" * 30, "training.threads"),
])
def test_huge_integers_in_toml_are_one_line_naming_the_file_and_key(tmp_path, capsys, text, key):
    cfg = tmp_path / "h.toml"
    cfg.write_text(text + "\n")
    assert _train(tmp_path / "o", "-c", str(cfg), "--quiet") == 2
    err = _one_line_error(capsys)
    assert str(cfg) in err and key in err and len(err) < 400
    assert not (tmp_path / "o").exists()


# -- 8. settings tables: per-key merge, dropped with a new name --------------------------------
def test_settings_flags_merge_into_the_files_table_unless_the_name_changes(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[training]\noptimizer = "adam"\noptimizer_params = {beta1 = 0.8, beta2 = 0.99}\n'
                   'schedule = "step"\nschedule_params = {step_size = 1}\n')
    assert _train(tmp_path / "m", "-c", str(cfg), *SMALL, "--optimizer", "Adam", "--optimizer-param", "eps=1e-6",
                  "--schedule-param", "gamma=0.5") == 0
    saved = tomllib.loads((tmp_path / "m" / "config.toml").read_text())["training"]
    assert saved["optimizer_params"] == {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6}
    assert saved["schedule_params"] == {"step_size": 1, "gamma": 0.5}
    assert _train(tmp_path / "n", "-c", str(cfg), *SMALL, "--optimizer", "sgd", "--schedule", "constant") == 0
    saved = tomllib.loads((tmp_path / "n" / "config.toml").read_text())["training"]
    assert saved["optimizer_params"] == {} and saved["schedule_params"] == {}


# -- 9. --checkpoint-seconds, and the hidden-size cap in TOML ----------------------------------
def test_checkpoint_seconds_has_a_flag_validated_as_the_toml_key(tmp_path, capsys):
    assert _train(tmp_path / "o", *SMALL, "--checkpoint-seconds", "5") == 0
    assert tomllib.loads((tmp_path / "o" / "config.toml").read_text())["training"]["checkpoint_seconds"] == 5.0
    for bad in ("0", "nan", "-1"):
        assert _train(tmp_path / "b", *SMALL, "--checkpoint-seconds", bad) == 2
        assert "--checkpoint-seconds" in _one_line_error(capsys)


def test_the_hidden_size_cap_applies_to_toml_too(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nhidden = [100000000000]\n")
    assert _train(tmp_path / "o", "-c", str(cfg), "--quiet") == 2
    err = _one_line_error(capsys)
    assert str(cfg) in err and "model.hidden" in err and "1,000,000" in err
    assert _train(tmp_path / "o", *SMALL, "--hidden", "2000000") == 2
    assert "1,000,000" in _one_line_error(capsys)


# -- 10. messages naming the option or file ----------------------------------------------------
def test_unknown_names_name_the_key_and_the_file_or_option(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nhidden_activation = "rleu"\n')
    assert _train(tmp_path / "o", "-c", str(cfg), "--quiet") == 2
    err = _one_line_error(capsys)
    assert str(cfg) in err and "model.hidden_activation" in err and "relu" in err
    assert _train(tmp_path / "o", *SMALL, "--output-activation", "rleu") == 2
    assert "--output-activation 'rleu'" in _one_line_error(capsys)
    for option in ("--loss", "--optimizer", "--schedule", "--init"):
        assert _train(tmp_path / "o", *SMALL, option, "nope") == 2
        assert f"{option} 'nope'" in _one_line_error(capsys)


def test_evaluate_names_its_options_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, *SMALL, "--split", "stratified") == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.npz"), "--split", "random", "--out", str(tmp_path / "e")]) == 2
    assert "--split 'random'" in _one_line_error(capsys)
    # another split seed would warn first: the bad fraction is the only line
    assert main(["evaluate", str(out / "model.npz"), "--split", "stratified", "--split-seed", "5",
                 "--test-fraction", "nan", "--out", str(tmp_path / "e")]) == 2
    assert "--test-fraction" in _one_line_error(capsys)
    assert not (tmp_path / "e").exists()


def test_a_diverging_run_prints_no_numpy_warnings(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[training]\nlr = 1e300\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _train(tmp_path / "o", "-c", str(cfg), *SMALL) == 2
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert "non-finite" in _one_line_error(capsys)


# -- 11. help texts ----------------------------------------------------------------------------
def _options(command):
    import typer

    from mlplab import cli

    cli._register_subcommands()
    group = typer.main.get_command(cli.app)
    return {param.name: param.help or "" for param in group.commands[command].params}


def test_train_help_shows_every_default_from_the_schema_and_is_accurate(capsys):
    from mlplab.config import SCHEMA, option_name
    from mlplab.registry import settings_of
    from mlplab.schedules import SCHEDULES

    helps = _options("train")
    for section, keys in SCHEMA.items():
        for key, (default, _) in keys.items():
            name = option_name(key).lstrip("-").replace("-", "_")
            assert name in helps, key
            if isinstance(default, (str, int, float)) and not isinstance(default, bool):
                shown = f"{default:g}" if isinstance(default, float) else str(default)
                assert f"[default: {shown}]" in helps[name], (key, helps[name])
    assert "[default: 100]" in helps["hidden"] and "[default: off]" in helps["early_stopping"]
    assert "Decoupled" not in helps["weight_decay"] and "added to the gradient" in helps["weight_decay"]
    assert "unused" in helps["split"]
    assert "validation loss" in helps["early_stopping"] and "training loss" in helps["early_stopping"]
    assert "canonical and textbook" in helps["test_fraction"]
    for name in SCHEDULES.canonical_names():
        keys = list(settings_of(SCHEDULES.get(name)))
        if keys:
            assert f"{name}: {', '.join(keys)}" in helps["schedule_param"]
    assert "refused" in helps["resume"] and "--quiet and --no-report may be given" in helps["resume"]
    assert main(["train", "--help"]) == 0
    assert "[default: digits]" in capsys.readouterr().out  # the escaped brackets render


def test_the_optimizer_settings_in_the_help_are_the_optimizers():
    from mlplab.cli_train import OPTIMIZER_SETTINGS
    from mlplab.optimizers import OPTIMIZERS
    from mlplab.registry import settings_of

    own = ("params", "lr", "momentum", "nesterov", "weight_decay")  # options of their own
    assert OPTIMIZER_SETTINGS == {name: list(settings_of(OPTIMIZERS.get(name), own))
                                  for name in OPTIMIZERS.canonical_names()}


def test_every_gradcheck_option_has_a_help_text():
    assert all(_options("gradcheck").values())
