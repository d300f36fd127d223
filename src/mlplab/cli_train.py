"""``mlplab train``, ``evaluate``, ``predict`` and ``gradcheck``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from mlplab.cli import check_recordable, path_arg, path_text_arg
from mlplab.config import SCHEMA, sizes_problem
from mlplab.errors import ConfigError, MlplabError, TrainingInterrupted
from mlplab.initializers import INITIALIZERS
from mlplab.io import printable
from mlplab.registry import Registry, settings_of
from mlplab.schedules import SCHEDULES


def _parse_kv(items: list[str] | None, option: str) -> dict[str, Any]:
    """``["std=0.1", "a=b"]`` -> ``{"std": 0.1, "a": "b"}`` (numbers and booleans parsed)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{option} {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        out[key.strip()] = _scalar(raw.strip())
    return out


def _scalar(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _parse_sizes(text: str | None, option: str = "--hidden", what: str = "hidden size") -> list[int] | None:
    """``"500,500"`` (or the report's ``"500-500"``) -> ``[500, 500]``; ``"none"`` -> ``[]``."""
    if text is None:
        return None
    text = text.strip()
    if text.lower() in ("none", "[]"):
        return []
    sep = "," if "," in text else "-"
    parts = [part.strip() for part in text.split(sep)]
    if not text or not all(part.isascii() and part.isdigit() for part in parts):  # not '²' or '١٦'
        raise ConfigError(f"{option} {text!r}: expected positive integers separated by commas, e.g. 500,500"
                          + (" (or 'none')" if option == "--hidden" else ""))
    sizes = [int(part) for part in parts]
    problem = sizes_problem(sizes, what)  # the config files' check
    if problem:
        raise ConfigError(f"{option} {text!r}: {problem}")
    return sizes


def _keep_off_kinks(net, X: np.ndarray, rng: np.random.Generator, margin: float = 0.05) -> None:
    """Random non-zero biases, then nudge the bias of every unit whose pre-activation comes
    within ``margin`` of 0 for some row of ``X``: the finite differences (steps up to 2e-4)
    would straddle a ReLU kink there and disagree with the exact derivative of a correct
    network. (Harmless for smooth activations, so it is done for all.)"""
    from mlplab.layers import Dense

    for layer in net.dense_layers:
        layer.b[...] = rng.normal(0, 0.1, layer.b.shape)
    a = X
    for layer in net.layers:
        if isinstance(layer, Dense):
            for _ in range(100):
                near = np.flatnonzero((np.abs(a @ layer.W + layer.b) < margin).any(axis=0))
                if near.size == 0:
                    break
                layer.b[near] += rng.choice([-1.0, 1.0], near.size) * rng.uniform(margin, 4 * margin, near.size)
        a = layer.forward(a, training=False)


def _dataset_name(dataset: str, data_dir: str | None) -> str:
    """The name a dataset argument loads as, without loading it: a known name in lower case, a
    folder holding MNIST's files 'mnist', another folder its absolute path."""
    from mlplab.data import dataset_name

    return dataset_name(dataset, data_dir=data_dir)


def _recorded_name(trained_on: object) -> str:
    """A model's recorded dataset as :func:`_dataset_name` spells it (known names in lower case)."""
    from mlplab.data.datasets import KNOWN_DATASETS

    name = str(trained_on)
    return name.lower() if name.strip().lower() in (*KNOWN_DATASETS, "digits") else name


#: the input size of each built-in dataset, known without loading it
_KNOWN_FEATURES = {"mnist": 784, "fashion-mnist": 784, "digits": 64}


def _cheap_feature_count(dataset: str) -> int | None:
    """A dataset's input size without loading or downloading it: a built-in dataset's fixed
    size, a folder's from its test images' IDX header alone; ``None`` when it cannot be told
    cheaply (the full load then reports what is wrong), so a model of another input size
    fails before any data is read."""
    import gzip

    from mlplab.data.datasets import _resolve
    from mlplab.data.fetch import FILENAMES, find_idx_file

    try:
        target = _resolve(dataset)
        if not isinstance(target, Path):
            return _KNOWN_FEATURES.get(target)
        path = find_idx_file(target, FILENAMES["test_images"])
        if path is None or not path.is_file():
            return None
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or not 2 <= head[3] <= 8:
                return None
            dims = np.frombuffer(fh.read(4 * head[3]), dtype=">u4")
        return int(np.prod(dims[1:], dtype=np.int64)) if dims.size == head[3] else None
    except Exception:  # unreadable, corrupt, not a dataset: left to the full load to report
        return None


def _download_lines():
    """Where stderr is not a terminal, a callback announcing each download source tried (the
    ``data`` commands' lines); on a terminal ``None``: a download bar would collide with the
    epoch bar, and a terminal user sees the command wait."""
    import sys

    if sys.stderr.isatty():
        return None
    from mlplab.cli_data import source_announcer

    return source_announcer()


def _warn_if_unscaled(path: Path, mf) -> None:
    if "scaler" not in mf.preprocessing:  # e.g. saved from the library without preprocessing=
        typer.echo(f"mlplab: warning: {printable(path)} records no input scaling; the pixels are fed to "
                   "the network unscaled", err=True)


class _Progress:
    """A rich progress bar over epochs showing loss and accuracy (stderr, hidden when quiet)."""

    def __init__(self, total: int, quiet: bool):
        from mlplab.training import Callback

        self.quiet = quiet
        self.total = total
        self._bar = None
        self._plain: dict[str, Any] | None = None  # no terminal: the last epoch's line, printed at the end
        outer = self

        class _CB(Callback):
            def on_train_begin(self, trainer):
                outer.start(trainer.epochs_done)

            def on_epoch_end(self, trainer, logs):
                outer.update(logs)

            def on_train_end(self, trainer):
                outer.stop()

        self.callback = _CB()

    def start(self, done: int) -> None:
        if self.quiet:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        if not console.is_terminal:  # rich's final frame would be cut to the console's width
            import time

            self._plain = {"done": done, "info": "", "t0": time.monotonic()}
            return
        self._bar = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                             TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                             console=console, transient=False)
        self._bar.start()
        self._task = self._bar.add_task("train", total=self.total, completed=done, info="")

    def update(self, logs: dict[str, Any]) -> None:
        if self._bar is None and self._plain is None:
            return
        info = f"loss {logs['loss']:.4f}" if logs.get("loss") is not None else ""
        if logs.get("accuracy") is not None:
            info += f"  acc {logs['accuracy']:.4f}"
        if logs.get("val_accuracy") is not None:
            info += f"  val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}"
        if self._plain is not None:
            self._plain.update(done=logs["epoch"], info=info)
            return
        self._bar.update(self._task, completed=logs["epoch"], info=info)

    def stop(self) -> None:
        if self._plain is not None:  # one whole line, however long (not cut at 80 columns)
            import time

            elapsed = int(time.monotonic() - self._plain["t0"])
            typer.echo(f"epoch {self._plain['done']}/{self.total}  {self._plain['info']}  "
                       f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}".rstrip(), err=True)
            self._plain = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _print_metrics(metrics: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from rich.text import Text

    test, train = metrics["test"], metrics.get("train") or {}
    table = Table()  # (a title would wrap to the table's width in ragged lines: two lines above it instead)
    table.add_column("metric")
    table.add_column("test", justify="right")  # test first, as in report.md and report.html
    table.add_column("train", justify="right")

    def f(v):
        return "-" if v is None else f"{v:.4f}"

    for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                       ("log_loss", "log-loss"), ("roc_auc_ovr_macro", "ROC AUC (macro OvR)"),
                       ("roc_auc_ovo_macro", "ROC AUC (macro OvO)"), ("majority_baseline", "majority baseline")):
        table.add_row(label, f(test.get(key)), f(train.get(key)))
    inf = metrics.get("inference") or {}
    console = Console()
    console.print(Text(printable(f"{metrics['model']} on {metrics['dataset']}")))
    console.print(Text(printable(f"split: {metrics['split']}")))
    if isinstance(metrics.get("training_data"), dict):  # an evaluation: is it the data the model trained on?
        console.print(Text(printable(f"data: {metrics['training_data'].get('text')}")), soft_wrap=True)
    console.print(table)
    if metrics.get("training_time_s") is not None:
        console.print(f"training time {metrics['training_time_s']:.2f} s over {metrics.get('epochs_run')} epochs")
    whole = inf.get("all")
    if isinstance(whole, dict) and whole.get("median_s") is not None:
        console.print(f"inference on the {whole.get('rows')} test rows: {whole['median_s']:.4f} s (median of {whole.get('repeats')}), "
                      f"{whole.get('samples_per_second', 0):,.0f} samples/s")
    if metrics.get("stop_reason"):
        console.print(metrics["stop_reason"])
    console.print(f"run folder: {printable(out)}")


def _default(text: str, section: str, key: str, shown: str | None = None) -> str:
    """An option's help: ``text`` and the default of its config key, read from the config
    SCHEMA (so the two cannot drift); ``shown`` for a default that is not a value (``None``)."""
    value = SCHEMA[section][key][0]
    if shown is None:
        shown = (",".join(map(str, value)) if isinstance(value, list) else f"{value:g}" if isinstance(value, float)
                 else f"--{'' if value else 'no-'}{key}" if isinstance(value, bool) else str(value))
    return f"{text} \\[default: {shown}]"  # (escaped: the help is rich markup)


#: each optimizer's settings taken by --optimizer-param (lr, momentum, nesterov and weight_decay
#: have options of their own). Written out, not read from mlplab.optimizers, whose import (BLAS)
#: would slow down every command; a test checks it against the optimizers.
OPTIMIZER_SETTINGS = {"sgd": [], "rmsprop": ["alpha", "eps"], "adam": ["beta1", "beta2", "eps", "eps_on"]}


def _settings_by_name(registry: Registry) -> dict[str, list[str]]:
    """Each name registered in ``registry`` (schedules, initializers) and its settings."""
    return {name: list(settings_of(registry.get(name))) for name in registry.canonical_names()}


def _params_help(text: str, what: str, settings: dict[str, list[str]]) -> str:
    listed = "; ".join(f"{name}: {', '.join(keys)}" for name, keys in settings.items() if keys)
    return (f"{text}; repeatable ({listed}). Each merges into the config file's {what}_params when --{what} "
            f"is not given or names the file's {what}; a --{what} naming another drops the file's table "
            f"(its settings were the other {what}'s).")


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: Optional[Path] = typer.Option(None, "--config", "-c", parser=path_arg,
                                              help="TOML config file (sections data, model, training); the "
                                                   "options given override its values."),
        dataset: Optional[str] = typer.Option(None, help=_default("mnist, fashion-mnist, digits, or a folder of "
                                                                  "IDX files.", "data", "dataset")),
        data_dir: Optional[str] = typer.Option(None, parser=path_text_arg,
                                               help="Folder with one subfolder per dataset (else $MLPLAB_DATA_DIR)."),
        split: Optional[str] = typer.Option(
            None, help=_default("canonical, stratified (all samples), sklearn (all samples, scikit-learn's "
                                "stratified train_test_split as the report used it) or textbook (55k/5k/10k; its "
                                "5k validation part is unused: validation data comes from --validation-fraction).",
                                "data", "split")),
        test_fraction: Optional[float] = typer.Option(
            None, help=_default("Test fraction of a stratified or sklearn split (canonical and textbook have "
                                "fixed test sets and ignore it).", "data", "test_fraction")),
        split_seed: Optional[int] = typer.Option(None, help=_default("Seed of the split.", "data", "split_seed")),
        scaling: Optional[str] = typer.Option(None, help=_default("unit (0 to 1), symmetric (-1 to 1), standard or "
                                                                  "none.", "data", "scaling")),
        validation_fraction: Optional[float] = typer.Option(
            None, help=_default("Stratified validation fraction of the training set (0: no validation data).",
                                "data", "validation_fraction")),
        max_train_samples: Optional[int] = typer.Option(None, help=_default(
            "Train on a stratified subset of this size.", "data", "max_train_samples", "all")),
        max_test_samples: Optional[int] = typer.Option(None, help=_default(
            "Test on a stratified subset of this size.", "data", "max_test_samples", "all")),
        hidden: Optional[str] = typer.Option(None, help=_default("Hidden layer sizes, e.g. 500,500 ('none' for no "
                                                                 "hidden layer).", "model", "hidden")),
        hidden_activation: Optional[str] = typer.Option(None, help=_default(
            "identity, sigmoid, tanh, relu, leaky_relu, softmax.", "model", "hidden_activation")),
        output_activation: Optional[str] = typer.Option(None, help=_default(
            "Output activation (softmax for cross_entropy).", "model", "output_activation")),
        loss: Optional[str] = typer.Option(None, help=_default("mse, cross_entropy or binary_cross_entropy.",
                                                               "model", "loss")),
        init: Optional[str] = typer.Option(None, help=_default("normal, standard_normal, uniform, zeros, glorot, "
                                                               "he.", "model", "init")),
        init_param: Optional[list[str]] = typer.Option(None, help=_params_help(
            "Initialiser setting KEY=VALUE (e.g. std=0.1)", "init", _settings_by_name(INITIALIZERS))),
        dropout: Optional[float] = typer.Option(None, help=_default("Dropout rate after each hidden layer.",
                                                                    "model", "dropout")),
        l2: Optional[float] = typer.Option(None, help=_default(
            "L2 penalty 0.5*l2*sum||W||^2 added to the loss trained on (history.csv's losses leave it out).",
            "model", "l2")),
        dtype: Optional[str] = typer.Option(None, help=_default("float32 (fast) or float64.", "model", "dtype")),
        optimizer: Optional[str] = typer.Option(None, help=_default(
            "sgd, rmsprop or adam (the learning rate stays --lr's: adam's usual one is 0.001).",
            "training", "optimizer")),
        optimizer_param: Optional[list[str]] = typer.Option(None, help=_params_help(
            "Optimizer setting KEY=VALUE", "optimizer", OPTIMIZER_SETTINGS)),
        lr: Optional[float] = typer.Option(None, help=_default("Learning rate.", "training", "lr")),
        momentum: Optional[float] = typer.Option(None, help=_default("SGD momentum.", "training", "momentum")),
        nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov",
                                                help=_default("Nesterov momentum (SGD).", "training", "nesterov")),
        weight_decay: Optional[float] = typer.Option(None, help=_default(
            "Weight decay of sgd and adam: weight_decay * w added to the gradient (an L2 term coupled to the "
            "gradient as torch.optim's, not AdamW's decoupled decay).", "training", "weight_decay")),
        batch_size: Optional[int] = typer.Option(None, help=_default("Minibatch size; 0 = full batch.",
                                                                     "training", "batch_size")),
        epochs: Optional[int] = typer.Option(None, help=_default("Number of epochs.", "training", "epochs")),
        schedule: Optional[str] = typer.Option(None, help=_default(
            "constant, step, inverse_scaling, cosine, reduce_on_plateau.", "training", "schedule")),
        schedule_param: Optional[list[str]] = typer.Option(None, help=_params_help(
            "Schedule setting KEY=VALUE", "schedule", _settings_by_name(SCHEDULES))),
        early_stopping: Optional[int] = typer.Option(None, help=_default(
            "Patience: stop after more than this many epochs in a row without improvement of the validation "
            "loss (the training loss without validation data), restoring the best weights.",
            "training", "early_stopping_patience", "off")),
        seed: Optional[int] = typer.Option(None, help=_default("Seed of initialisation, shuffling and dropout.",
                                                               "training", "seed")),
        threads: Optional[int] = typer.Option(None, help=_default("BLAS threads.", "training", "threads",
                                                                  "the BLAS's own")),
        train_metrics: Optional[str] = typer.Option(None, help=_default(
            "running (mean over the epoch's minibatches), full (a pass over the training set after each epoch) "
            "or none (not measured; early stopping and reduce_on_plateau then need validation data).",
            "training", "train_metrics")),
        checkpoint_seconds: Optional[float] = typer.Option(None, help=_default(
            "Write a checkpoint (for --resume) at the end of an epoch when this many seconds have passed "
            "since the last one.", "training", "checkpoint_seconds")),
        out: Optional[Path] = typer.Option(None, "--out", "-o", parser=path_arg,
                                           help="Run folder to write (default runs/<dataset>-<time>)."),
        resume: Optional[Path] = typer.Option(
            None, parser=path_arg,
            help="Resume an interrupted run folder with its own config.toml, to the same end: every option "
                 "that would change the run (--config, --out and every data, model and training option, "
                 "--threads and --checkpoint-seconds included) is refused; --quiet and --no-report may be given."),
        no_report: bool = typer.Option(False, "--no-report", help="Skip figures and report."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Train a network on a dataset, evaluate it and write a run folder."""
        from mlplab.config import PARAMS_OF, option_name
        from mlplab.runs import load_config, resume_config, train_run

        flags = {  # each config key's option (None: not given)
            "data": {"dataset": dataset, "data_dir": data_dir, "split": split, "test_fraction": test_fraction,
                     "split_seed": split_seed, "scaling": scaling, "validation_fraction": validation_fraction,
                     "max_train_samples": max_train_samples, "max_test_samples": max_test_samples},
            "model": {"hidden": hidden, "hidden_activation": hidden_activation,
                      "output_activation": output_activation, "loss": loss, "init": init,
                      "init_params": init_param, "dropout": dropout, "l2": l2, "dtype": dtype},
            "training": {"optimizer": optimizer, "optimizer_params": optimizer_param, "lr": lr,
                         "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
                         "batch_size": batch_size, "epochs": epochs, "schedule": schedule,
                         "schedule_params": schedule_param, "early_stopping_patience": early_stopping,
                         "seed": seed, "threads": threads, "train_metrics": train_metrics,
                         "checkpoint_seconds": checkpoint_seconds},
        }
        if resume is not None:
            given = [name for name, value in (("--config", config), ("--out", out)) if value is not None]
            given += [option_name(key) for values in flags.values() for key, value in values.items()
                      if value not in (None, [])]
            if given:
                raise ConfigError(f"--resume {resume}: {', '.join(given)} would change the run it continues "
                                  "(it resumes with its own config.toml; only --quiet and --no-report may be given)")
            cfg = resume_config(resume)
            out_dir = resume
        else:
            check_recordable(dataset, "--dataset")  # config.toml records both
            check_recordable(data_dir, "--data-dir")
            flags["model"]["hidden"] = _parse_sizes(hidden)
            for section, key in PARAMS_OF:
                flags[section][key] = _parse_kv(flags[section][key], option_name(key))
            cfg = load_config(config, flags)
            if out is None:
                import time as _t

                out = Path("runs") / f"{Path(str(cfg['data']['dataset'])).name}-{_t.strftime('%Y%m%d-%H%M%S')}"
            out_dir = out
        progress = _Progress(cfg["training"]["epochs"], quiet)
        holder: dict[str, Any] = {}

        def hook(trainer):
            holder["trainer"] = trainer

            def handler(signum, frame):
                trainer.interrupt_requested = True

            signal.signal(signal.SIGINT, handler)
            signal.signal(signal.SIGTERM, handler)

        try:
            metrics = train_run(cfg, out_dir, callbacks=[progress.callback], trainer_hook=hook,
                                resume=resume is not None, report=not no_report, progress=_download_lines())
        except TrainingInterrupted as exc:
            progress.stop()
            raise TrainingInterrupted(f"{exc}; checkpoint written to {out_dir}/checkpoint.npz; "
                                      f"continue with: mlplab train --resume {out_dir}") from None
        finally:
            progress.stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _print_metrics(metrics, out_dir)

    @app.command()
    def evaluate(
        model: Path = typer.Argument(..., parser=path_arg, help="Model file (.npz) written by mlplab."),
        dataset: Optional[str] = typer.Option(
            None, help="Dataset to evaluate on (its test split). Default: the one the model was trained on "
                       "(mnist, fashion-mnist, digits, or the folder it was trained on; older model files that "
                       "record only a folder's name need the folder here)."),
        data_dir: Optional[str] = typer.Option(None, parser=path_text_arg, help="Folder with one subfolder per dataset."),
        split: Optional[str] = typer.Option(
            None, help="canonical, stratified, sklearn or textbook: the test part is used. Default: the split the "
                       "model was trained on when --dataset is its dataset, else canonical."),
        test_fraction: Optional[float] = typer.Option(None, help="Test fraction of a stratified or sklearn split (default: the model's, else 0.3)."),
        split_seed: Optional[int] = typer.Option(None, help="Seed of the split (default: the model's, else 123)."),
        max_test_samples: Optional[int] = typer.Option(
            None, min=1, help="Evaluate on a stratified subset of the test part of this size (default: the model's "
                              "when it was tested on one and the split is its own)."),
        out: Path = typer.Option(..., "--out", "-o", parser=path_arg, help="Folder to write the evaluation into."),
        no_report: bool = typer.Option(False, "--no-report", help="Skip figures and report."),
    ) -> None:
        """Evaluate a saved model on a dataset's test split and write metrics, figures and a report.

        By default the test part of the split the model was trained on is used, so a model trained on a
        stratified 70/30 split is not scored on images it was trained on."""
        from mlplab.data.datasets import KNOWN_DATASETS
        from mlplab.data.preprocessing import Scaler
        from mlplab.data.splits import SPLIT_KINDS
        from mlplab.runs import check_out_dir, evaluate_into, prepare_data, training_data_comparison, write_report
        from mlplab.serialization import load_model

        if split is not None and split not in SPLIT_KINDS:
            raise ConfigError(f"--split {split!r}: expected {', '.join(SPLIT_KINDS)}")
        if test_fraction is not None and not 0.0 < test_fraction < 1.0:  # NaN too
            raise ConfigError(f"--test-fraction {test_fraction}: must be between 0 and 1")
        if split_seed is not None and split_seed < 0:
            raise ConfigError(f"--split-seed {split_seed}: must be >= 0")
        mf = load_model(model)
        check_out_dir(out)
        trained_on = mf.preprocessing.get("dataset")
        if dataset is None:
            if (trained_on is not None and str(trained_on).lower() not in (*KNOWN_DATASETS, "digits")
                    and not Path(str(trained_on)).is_absolute()):  # older models recorded only the folder's name
                raise ConfigError(f"{model} was trained on dataset '{trained_on}' (a folder of IDX files): "
                                  "give that folder as --dataset")
            dataset = str(trained_on or "mnist")
        n_features = _cheap_feature_count(dataset)
        if n_features is not None and n_features != mf.net.sizes[0]:  # before any data is loaded
            raise ConfigError(f"{model}: the model expects {mf.net.sizes[0]} input features but dataset "
                              f"{dataset!r} has {n_features}")
        trained = mf.preprocessing.get("split") or {}
        if trained_on is not None and _recorded_name(trained_on) != _dataset_name(dataset, data_dir):
            typer.echo(printable(f"mlplab: warning: {model} was trained on {trained_on}, not on {dataset}; evaluating "
                                 f"on {'the --split given' if split else 'its canonical test set'}"), err=True)
            trained = {}  # another dataset: its own canonical split unless one is given
        elif not trained and split is None and trained_on is not None:
            typer.echo(f"mlplab: warning: {printable(model)} does not record the split it was trained on; evaluating "
                       "on the canonical test set (give --split if it was trained on another)", err=True)
        d = {"dataset": dataset, "data_dir": data_dir, "split": split or trained.get("kind", "canonical"),
             "test_fraction": test_fraction if test_fraction is not None else trained.get("test_fraction", 0.3),
             "split_seed": split_seed if split_seed is not None else trained.get("split_seed", 123),
             "scaling": "none", "validation_fraction": 0.0, "max_train_samples": None}
        fields = {"canonical": ("kind",), "textbook": ("kind", "split_seed")}.get(
            d["split"], ("kind", "test_fraction", "split_seed"))  # what defines each kind's rows
        if "test_samples" in trained or "train_samples" in trained:
            fields = (*fields, "split_seed")  # the seed draws the subsets too
        same_split = bool(trained) and all(
            trained.get(f) == d["split" if f == "kind" else f] for f in fields)
        if same_split:  # the training rows the model's own train metrics were measured on
            d["max_train_samples"] = trained.get("train_samples")
            d["validation_fraction"] = trained.get("validation_fraction", 0.0)
        elif trained:
            typer.echo(f"mlplab: warning: {printable(model)} was trained on another split ({trained.get('kind')}, test "
                       f"fraction {trained.get('test_fraction')}, seed {trained.get('split_seed')}): this test "
                       "part may hold images it was trained on", err=True)
        d["max_test_samples"] = (max_test_samples if max_test_samples is not None
                                 else trained.get("test_samples") if same_split else None)
        cfg = {"data": d, "model": {"dtype": mf.net.dtype.name}}
        data = prepare_data(cfg, progress=_download_lines())
        if data.X_test.shape[1] != mf.net.sizes[0]:
            raise ConfigError(f"{model}: the model expects {mf.net.sizes[0]} input features but dataset "
                              f"{dataset!r} has {data.X_test.shape[1]}")
        if len(data.class_names) != max(mf.net.sizes[-1], 2):
            raise ConfigError(f"{model}: the model has {mf.net.sizes[-1]} outputs but dataset {dataset!r} "
                              f"has {len(data.class_names)} classes")
        _warn_if_unscaled(model, mf)
        scaler = Scaler.from_dict(mf.preprocessing.get("scaler", {"kind": "none"}), mf.extra_arrays)
        data.X_test = scaler.transform(data.test_images, dtype=mf.net.dtype)
        data.X_train = scaler.transform(data.X_train, dtype=mf.net.dtype)  # was unscaled ("none")
        metrics = evaluate_into(out, mf.net, data, {"model": mf.net.config()}, None, None, model_file=printable(model),
                                training_data=training_data_comparison(mf.preprocessing.get("data"), data.data_record))
        if not no_report:
            write_report(out)
        _print_metrics(metrics, out)

    @app.command()
    def predict(
        model: Path = typer.Argument(..., parser=path_arg, help="Model file (.npz)."),
        images: list[Path] = typer.Argument(..., parser=path_arg, help="Picture files (PNG, JPEG, ...) of single digits."),
        top: int = typer.Option(3, min=1, help="How many classes to show per image."),
        ink: str = typer.Option("auto", help="Ink of the model's training images: light (light on dark, "
                                "as MNIST), dark (dark on light), or auto: as the model file records "
                                "(light if it does not). Pictures of either kind are converted to it."),
    ) -> None:
        """Classify your own pictures: each is converted to the model's input format first. Exit code 2 if any
        picture cannot be read (it gets a one-line error on stderr; the others are still predicted)."""
        from mlplab.data.preprocessing import Scaler
        from mlplab.imageio import INKS, image_to_input
        from mlplab.serialization import load_model

        if ink not in ("auto", *INKS):
            raise ConfigError(f"--ink {ink!r}: valid values are auto, {', '.join(INKS)}")
        mf = load_model(model)
        prep = mf.preprocessing
        if ink == "auto":
            ink = prep.get("ink", "light")  # files written before it was recorded: MNIST's polarity
            if ink not in INKS:
                raise ConfigError(f"{model}: preprocessing.ink must be one of {', '.join(INKS)}, got {ink!r}")
        shape = tuple(prep.get("image_shape") or ())
        if not shape:
            side = int(round(np.sqrt(mf.net.sizes[0])))
            if side * side != mf.net.sizes[0]:
                raise ConfigError(f"{model}: input size {mf.net.sizes[0]} is not an image")
            shape = (side, side)
        pixel_max = float(prep.get("pixel_max", 255))
        _warn_if_unscaled(model, mf)
        scaler = Scaler.from_dict(prep.get("scaler", {"kind": "none"}), mf.extra_arrays)
        def warn(message: str) -> None:
            typer.echo(f"mlplab: warning: {printable(message)}", err=True)

        read, rows = [], []
        for path in images:  # a bad picture is reported and skipped: the others are still predicted
            try:
                rows.append(image_to_input(path, shape, pixel_max, dataset=prep.get("dataset"), ink=ink, warn=warn))
            except MlplabError as exc:
                typer.echo(f"mlplab: error: {printable(str(exc))}", err=True)
                continue
            read.append(path)
        if rows:
            proba = mf.net.predict_proba(scaler.transform(np.stack(rows), dtype=mf.net.dtype))
            names = [str(c) for c in mf.classes] or [str(i) for i in range(proba.shape[1])]
            for path, p in zip(read, proba):
                order = np.argsort(-p)[: max(1, top)]
                best = ", ".join(f"{names[k]} ({p[k]:.3f})" for k in order)
                typer.echo(f"{printable(path)}: {names[order[0]]}    [{best}]")
        if len(read) < len(images):
            raise typer.Exit(2)

    @app.command()
    def gradcheck(
        sizes: str = typer.Option("6,5,4,3", help="Layer sizes, input to output."),
        hidden_activation: str = typer.Option("sigmoid", help="Activation of the hidden layers (as train's)."),
        output_activation: str = typer.Option("sigmoid", help="Output activation (softmax for cross_entropy)."),
        loss: str = typer.Option("mse", help="mse, cross_entropy or binary_cross_entropy."),
        l2: float = typer.Option(0.0, help="L2 penalty 0.5*l2*sum||W||^2, checked with the loss."),
        dropout: float = typer.Option(0.0, help="Dropout rate after each hidden layer (its masks held fixed)."),
        samples: int = typer.Option(8, min=1, help="Random input rows."),
        seed: int = typer.Option(0, min=0, help="Seed of the network, the input rows and their labels."),
        tol: float = typer.Option(1e-6, help="Fail (exit 1) above this maximum relative error."),
    ) -> None:
        """Check backpropagation against central differences in float64 over every parameter."""
        from mlplab.gradcheck import gradcheck as check
        from mlplab.network import MLP

        size_list = _parse_sizes(sizes, "--sizes", "layer size") or []
        if len(size_list) < 2:
            raise ConfigError(f"--sizes {sizes!r}: give at least an input and an output size")
        net = MLP(size_list, hidden_activation, output_activation, loss, init="glorot",
                  dtype="float64", seed=seed, l2=l2, dropout=dropout)
        if not (np.isfinite(tol) and tol > 0):
            raise ConfigError(f"--tol {tol}: must be a finite number > 0")
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(samples, size_list[0]))
        _keep_off_kinks(net, X, rng)
        y = rng.integers(0, max(size_list[-1], 2), samples)
        result = check(net, X, y)
        for name, err in result.per_parameter:
            typer.echo(f"{name:>4}  max relative error {err:.3e}")
        typer.echo("paths: " + ", ".join(f"{path} {err:.3e}" for path, err in result.per_path.items()))
        typer.echo(f"{net.describe()}: {result.n_checked} entries, max relative error {result.max_rel_error:.3e}")
        if not result.passed(tol):
            typer.echo(f"FAILED: max relative error {result.max_rel_error:.3e} is above --tol {tol:g}", err=True)
            raise typer.Exit(1)
        typer.echo(f"passed: max relative error {result.max_rel_error:.3e} is within --tol {tol:g}")

