"""Every command, every input a user can get wrong: one line naming the input, exit code 2,
no traceback, nothing written. The table below is also what the reliability report counts."""

from pathlib import Path

import pytest

from mlplab.cli import main
from mlplab.network import MLP
from mlplab.serialization import save_model

# (case id, argv template, files to create, needle expected in the message)
# {d} is the case's scratch folder; files maps a name to bytes (or a callable(path)).


def _model(path: Path, n_in=64):
    side = int(n_in ** 0.5)
    save_model(path, MLP([n_in, 8, 10], "relu", "softmax", "cross_entropy", init="he"),
               preprocessing={"scaler": {"kind": "unit", "pixel_max": 16}, "image_shape": [side, side],
                              "pixel_max": 16})


def _edited_model(**changes):
    """A model file whose metadata was edited by hand (saved with inconsistent descriptions)."""
    def write(path: Path):
        prep = {"scaler": {"kind": "unit", "pixel_max": 16}, "image_shape": [8, 8], "pixel_max": 16}
        prep.update(changes.pop("preprocessing", {}))
        save_model(path, MLP([64, 8, 10], "relu", "softmax", "cross_entropy", init="he"), preprocessing=prep,
                   **changes)
    return write


def _mnist_model(path: Path):
    _model(path, n_in=784)


def _finished_run(path: Path):
    path.mkdir()
    (path / "metrics.json").write_text("{}")


def _directory(path: Path):
    path.mkdir()


def _idx_folder_bad_magic(path: Path):
    path.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (path / name).write_bytes(b"\x00\x00\x08\x05" + b"\x00" * 12)


def _truncated_model(path: Path):
    _model(path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


TRAIN = ["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--out", "{d}/out"]


def EXP_RUN(name, *extra, out="{d}/exp"):  # noqa: N802 (reads like the other argv templates)
    return ["experiment", "run", name, "--quick", "--out", out, *extra]


SPEC_OK = b"""name = "s"
runner = "generic"
protocol = "corrected"
[data]
dataset = "digits"
[split]
kind = "canonical"
[model]
hidden = [8]
[training]
lr = 0.1
epochs = 2
"""

def _mnist_best_spec(options: bytes, quick: bytes = b"") -> bytes:
    """SPEC_OK run by the mnist-best runner, whose recipes live in [options]."""
    return (SPEC_OK.replace(b'runner = "generic"', b'runner = "mnist-best"').replace(b"hidden = [8]\n", b"")
            + b"[options]\n" + options + quick)


CASES = [
    ("train-negative-lr", TRAIN + ["--lr", "-1"], {}, "training.lr"),
    ("train-zero-epochs", TRAIN + ["--epochs", "0"], {}, "training.epochs"),
    ("train-hidden-0", TRAIN + ["--hidden", "0"], {}, "--hidden"),
    ("train-hidden-text", TRAIN + ["--hidden", "a,b"], {}, "--hidden"),
    ("train-hidden-negative", TRAIN + ["--hidden", "-5"], {}, "--hidden"),
    ("train-hidden-double-dash", TRAIN + ["--hidden", "32--5"], {}, "--hidden"),
    ("train-hidden-empty-part", TRAIN + ["--hidden", "32,,32"], {}, "--hidden"),
    ("train-hidden-empty", TRAIN + ["--hidden", ""], {}, "--hidden"),
    ("train-hidden-huge", TRAIN + ["--hidden", "99999999999"], {}, "--hidden"),
    ("train-digits-textbook-split", TRAIN + ["--split", "textbook"], {}, "textbook"),
    ("train-optimizer-param-text", TRAIN + ["--optimizer", "adam", "--optimizer-param", "beta1=x"], {}, "beta1"),
    ("train-optimizer-param-unknown", TRAIN + ["--optimizer-param", "foo=1"], {}, "'foo'"),
    ("train-schedule-param-text", TRAIN + ["--schedule", "step", "--schedule-param", "gamma=x"], {}, "gamma"),
    ("train-schedule-param-unknown", TRAIN + ["--schedule", "cosine", "--schedule-param", "gamma=2"], {}, "'gamma'"),
    ("train-momentum-with-adam", TRAIN + ["--optimizer", "adam", "--momentum", "0.9"], {}, "training.momentum"),
    ("train-weight-decay-with-rmsprop", TRAIN + ["--optimizer", "rmsprop", "--weight-decay", "0.1"], {},
     "training.weight_decay"),
    ("train-missing-data-dir", TRAIN + ["--data-dir", "{d}/nope"], {}, "data_dir"),
    ("train-out-parent-is-file", ["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--out", "{d}/f/out"],
     {"f": b"x"}, "f/out"),
    ("train-hidden-unicode-digit", TRAIN + ["--hidden", "\u00b2"], {}, "--hidden"),
    ("train-optimizer-param-lr", TRAIN + ["--optimizer-param", "lr=5"], {}, "optimizer_params.lr"),
    ("train-batch-too-large", TRAIN + ["--batch-size", "100000"], {}, "batch size"),
    ("train-bad-optimizer", TRAIN + ["--optimizer", "adagrad"], {}, "optimizer"),
    ("train-bad-activation", TRAIN + ["--hidden-activation", "swish"], {}, "activation"),
    ("train-bad-loss", TRAIN + ["--loss", "hinge"], {}, "loss"),
    ("train-loss-pairing", TRAIN + ["--loss", "cross_entropy", "--output-activation", "tanh"], {}, "softmax"),
    ("train-bad-init", TRAIN + ["--init", "orthogonal"], {}, "initializer"),
    ("train-bad-init-param", TRAIN + ["--init", "normal", "--init-param", "std"], {}, "--init-param"),
    ("train-negative-std", TRAIN + ["--init", "normal", "--init-param", "std=-1"], {}, "std"),
    ("train-dropout-range", TRAIN + ["--dropout", "1.5"], {}, "model.dropout"),
    ("train-bad-dtype", TRAIN + ["--dtype", "float16"], {}, "model.dtype"),
    ("train-bad-scaling", TRAIN + ["--scaling", "log"], {}, "data.scaling"),
    ("train-bad-split", TRAIN + ["--split", "random"], {}, "data.split"),
    ("train-bad-schedule", TRAIN + ["--schedule", "warmup"], {}, "schedule"),
    ("train-bad-schedule-param", TRAIN + ["--schedule", "step", "--schedule-param", "gamma=7"], {}, "gamma"),
    ("train-epochs-not-int", TRAIN + ["--epochs", "ten"], {}, "--epochs"),
    ("train-unknown-option", TRAIN + ["--learning-rate", "0.1"], {}, "--learning-rate"),
    ("train-unknown-dataset", ["train", "--dataset", "cifar", "--out", "{d}/out"], {}, "cifar"),
    ("train-idx-folder-bad", ["train", "--dataset", "{d}/idx", "--out", "{d}/out"], {"idx": _idx_folder_bad_magic}, "idx"),
    ("train-missing-config", ["train", "-c", "{d}/nope.toml", "--out", "{d}/out"], {}, "nope.toml"),
    ("train-config-dir", ["train", "-c", "{d}/cfgdir", "--out", "{d}/out"], {"cfgdir": _directory}, "directory"),
    ("train-config-bad-toml", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"[training\nlr=1"}, "invalid TOML"),
    ("train-config-not-utf8", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"lr = '\xff'"}, "UTF-8"),
    ("train-config-unknown-key", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"[training]\nlearning_rate = 1\n"}, "learning_rate"),
    ("train-config-unknown-section", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"[optim]\nlr = 1\n"}, "optim"),
    ("train-config-wrong-type", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"[training]\nepochs = '5'\n"}, "training.epochs"),
    ("train-config-bool-as-int", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"[training]\nepochs = true\n"}, "training.epochs"),
    ("train-config-hidden-zero", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"[model]\nhidden = [10, 0]\n"}, "model.hidden"),
    ("train-config-huge", ["train", "-c", "{d}/c.toml", "--out", "{d}/out"], {"c.toml": b"#" * (5 * 1024 * 1024)}, "too large"),
    ("train-out-is-file", ["train", "--dataset", "digits", "--out", "{d}/f"], {"f": b"x"}, "--out"),
    ("train-out-finished", ["train", "--dataset", "digits", "--out", "{d}/run"], {"run": _finished_run}, "already holds"),
    ("train-resume-not-run", ["train", "--resume", "{d}/empty"], {"empty": _directory}, "config.toml"),
    ("evaluate-missing-model", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"], {}, "no such model file"),
    ("evaluate-model-dir", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"], {"m.npz": _directory}, "directory"),
    ("evaluate-empty-model", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"], {"m.npz": b""}, "not an mlplab model file"),
    ("evaluate-truncated-model", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"], {"m.npz": _truncated_model}, "m.npz"),
    ("evaluate-text-model", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"], {"m.npz": b"hello"}, "not an mlplab model file"),
    ("evaluate-wrong-dims", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"], {"m.npz": _mnist_model}, "784 input features"),
    ("evaluate-bad-dataset", ["evaluate", "{d}/m.npz", "--dataset", "nope", "--out", "{d}/out"], {"m.npz": _model}, "nope"),
    ("evaluate-bad-split", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--split", "random", "--out", "{d}/out"],
     {"m.npz": _model}, "random"),
    ("evaluate-bad-test-fraction", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--split", "stratified",
                                    "--test-fraction", "1.5", "--out", "{d}/out"], {"m.npz": _model}, "--test-fraction"),
    ("predict-top-0", ["predict", "{d}/m.npz", "{d}/x.png", "--top", "0"], {"m.npz": _model}, "--top"),
    ("predict-model-class-count", ["predict", "{d}/m.npz", "{d}/x.png"], {"m.npz": _edited_model(classes=["a", "b", "c"])},
     "3 class names"),
    ("predict-model-negative-image-shape", ["predict", "{d}/m.npz", "{d}/x.png"],
     {"m.npz": _edited_model(preprocessing={"image_shape": [-8, -8]})}, "image_shape"),
    ("predict-model-image-shape-mismatch", ["predict", "{d}/m.npz", "{d}/x.png"],
     {"m.npz": _edited_model(preprocessing={"image_shape": [28, 28]})}, "image_shape"),
    ("evaluate-model-bad-split-record", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"],
     {"m.npz": _edited_model(preprocessing={"split": {"kind": "stratified", "test_fraction": None, "split_seed": 1}})},
     "preprocessing.split"),
    ("evaluate-model-bad-test-subset", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"],
     {"m.npz": _edited_model(preprocessing={"split": {"kind": "sklearn", "test_fraction": 0.3, "split_seed": 1,
                                                      "test_samples": 0}})}, "test_samples"),
    ("evaluate-max-test-samples-0", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--max-test-samples", "0",
                                     "--out", "{d}/out"], {"m.npz": _model}, "--max-test-samples"),
    ("train-max-test-samples-0", ["train", "--dataset", "digits", "--max-test-samples", "0", "--out", "{d}/out"], {},
     "max_test_samples"),
    ("evaluate-model-bad-scaler", ["evaluate", "{d}/m.npz", "--dataset", "digits", "--out", "{d}/out"],
     {"m.npz": _edited_model(preprocessing={"scaler": {"kind": "zzz"}})}, "scaler"),
    ("predict-missing-model", ["predict", "{d}/m.npz", "{d}/x.png"], {}, "no such model file"),
    ("predict-missing-picture", ["predict", "{d}/m.npz", "{d}/x.png"], {"m.npz": _model}, "x.png"),
    ("predict-not-a-picture", ["predict", "{d}/m.npz", "{d}/x.png"], {"m.npz": _model, "x.png": b"not png"}, "x.png"),
    ("predict-empty-picture", ["predict", "{d}/m.npz", "{d}/x.png"], {"m.npz": _model, "x.png": b""}, "x.png"),
    ("gradcheck-one-size", ["gradcheck", "--sizes", "5"], {}, "--sizes"),
    ("gradcheck-zero-size", ["gradcheck", "--sizes", "5,0,3"], {}, "--sizes"),
    ("gradcheck-negative-size", ["gradcheck", "--sizes", "5,-2,3"], {}, "--sizes"),
    ("gradcheck-zero-samples", ["gradcheck", "--samples", "0"], {}, "--samples"),
    ("gradcheck-negative-seed", ["gradcheck", "--seed", "-1"], {}, "--seed"),
    ("gradcheck-negative-tol", ["gradcheck", "--tol", "-1"], {}, "--tol"),
    ("gradcheck-bad-activation", ["gradcheck", "--hidden-activation", "gelu"], {}, "activation"),
    ("data-fetch-unknown", ["data", "fetch", "cifar"], {}, "cifar"),
    ("data-info-unknown", ["data", "info", "cifar"], {}, "cifar"),
    ("data-show-zero", ["data", "show", "digits", "--n", "0", "--out", "{d}/g.png"], {}, "--n"),
    ("data-show-out-dir", ["data", "show", "digits", "--out", "{d}/gdir"], {"gdir": _directory}, "gdir"),
    ("data-show-out-parent-is-file", ["data", "show", "digits", "--out", "{d}/f/g.png"], {"f": b"x"}, "f"),
    ("data-info-bad-folder", ["data", "info", "{d}/idx"], {"idx": _idx_folder_bad_magic}, "idx"),
    ("report-missing", ["report", "{d}/nope"], {}, "nope"),
    ("report-no-metrics", ["report", "{d}/run"], {"run": _directory}, "metrics.json"),
    ("compare-missing", ["compare", "{d}/a", "{d}/b", "--out", "{d}/cmp"], {}, "a"),
    ("experiment-show-unknown", ["experiment", "show", "no-such-experiment"], {}, "no-such-experiment"),
    ("experiment-run-unknown", EXP_RUN("no-such-experiment"), {}, "no-such-experiment"),
    ("experiment-run-missing-spec", EXP_RUN("{d}/nope.toml"), {}, "nope.toml"),
    ("experiment-run-empty-spec", EXP_RUN("{d}/s.toml"), {"s.toml": b""}, "s.toml"),
    ("experiment-run-bad-toml", EXP_RUN("{d}/s.toml"), {"s.toml": b"name = [unclosed"}, "s.toml"),
    ("experiment-run-not-utf8", EXP_RUN("{d}/s.toml"), {"s.toml": b"name = \"\xff\xfe\""}, "s.toml"),
    ("experiment-run-spec-dir", EXP_RUN("{d}/s.toml"), {"s.toml": _directory}, "s.toml"),
    ("experiment-run-huge-spec", EXP_RUN("{d}/s.toml"), {"s.toml": b"#" * (5 * 1024 * 1024)}, "too large"),
    ("experiment-run-batch-too-large", EXP_RUN("{d}/s.toml"),
     {"s.toml": SPEC_OK.replace(b"epochs = 2", b"epochs = 2\nbatch_size = 100000")}, "batch"),
    ("experiment-run-unknown-key", EXP_RUN("{d}/s.toml"), {"s.toml": SPEC_OK.replace(b"lr = 0.1", b"learning_rate = 1")},
     "learning_rate"),
    ("experiment-run-negative-lr", EXP_RUN("{d}/s.toml"), {"s.toml": SPEC_OK.replace(b"lr = 0.1", b"lr = -1")},
     "training.lr"),
    ("experiment-run-zero-epochs", EXP_RUN("{d}/s.toml"), {"s.toml": SPEC_OK.replace(b"epochs = 2", b"epochs = 0")},
     "training.epochs"),
    ("experiment-run-hidden-0", EXP_RUN("{d}/s.toml"), {"s.toml": SPEC_OK.replace(b"hidden = [8]", b"hidden = [0]")},
     "model.hidden"),
    ("experiment-run-lr-text", EXP_RUN("{d}/s.toml"), {"s.toml": SPEC_OK.replace(b"lr = 0.1", b'lr = "fast"')},
     "training.lr"),
    ("experiment-run-bad-runner", EXP_RUN("{d}/s.toml"), {"s.toml": SPEC_OK.replace(b'"generic"', b'"nope"')},
     "runner"),
    ("experiment-run-jobs-0", EXP_RUN("two-hidden-layers", "--jobs", "0"), {}, "--jobs"),
    ("experiment-run-threads-0", EXP_RUN("two-hidden-layers", "--threads", "0"), {}, "--threads"),
    ("experiment-run-seeds-0", EXP_RUN("two-hidden-layers", "--seeds", "0"), {}, "--seeds"),
    ("experiment-run-bad-backend", EXP_RUN("two-hidden-layers", "--backend", "slurm"), {}, "--backend"),
    ("experiment-run-recipe-bad-activation", EXP_RUN("{d}/s.toml"),
     {"s.toml": _mnist_best_spec(b'fast = { hidden = [8], hidden_activation = "swish" }\nbest = { hidden = [8] }\n')}, "swish"),
    ("experiment-run-recipe-epochs-text", EXP_RUN("{d}/s.toml"),
     {"s.toml": _mnist_best_spec(b'fast = { hidden = [8], epochs = "ten" }\nbest = { hidden = [8] }\n')}, "options.fast.epochs"),
    ("experiment-run-target-text", EXP_RUN("{d}/s.toml"),
     {"s.toml": _mnist_best_spec(b'fast = { hidden = [8] }\nbest = { hidden = [8] }\ntargets = { fast = "high" }\n')},
     "options.targets.fast"),
    ("experiment-run-full-recipe-bad-under-quick", EXP_RUN("{d}/s.toml"),
     {"s.toml": _mnist_best_spec(b'fast = { hidden = [8], optimizer = "lbfgs" }\nbest = { hidden = [8] }\n',
                       quick=b'[quick]\noptions = { fast = { hidden = [8] } }\n')}, "lbfgs"),
    ("experiment-run-unknown-dataset", EXP_RUN("{d}/s.toml"), {"s.toml": SPEC_OK.replace(b'"digits"', b'"cifar"')},
     "cifar"),
    ("experiment-run-bad-optimizer", EXP_RUN("{d}/s.toml"),
     {"s.toml": SPEC_OK.replace(b"lr = 0.1", b'lr = 0.1\noptimizer = "lbfgs"')}, "lbfgs"),
    ("experiment-run-activation-setting-typo", EXP_RUN("{d}/s.toml"),
     {"s.toml": SPEC_OK.replace(b"hidden = [8]", b'hidden = [8]\nhidden_activation = { name = "leaky_relu", slop = 0.1 }')},
     "slop"),
    ("experiment-run-init-param-typo", EXP_RUN("{d}/s.toml"),
     {"s.toml": SPEC_OK.replace(b"hidden = [8]", b'hidden = [8]\ninit = "normal"\ninit_params = { stdd = 0.1 }')}, "stdd"),
    ("experiment-run-loss-pairing", EXP_RUN("{d}/s.toml"),
     {"s.toml": SPEC_OK.replace(b"hidden = [8]", b'hidden = [8]\nloss = "binary_cross_entropy"')}, "binary_cross_entropy"),
    ("experiment-run-target-typo", EXP_RUN("{d}/s.toml"),
     {"s.toml": _mnist_best_spec(b'fast = { hidden = [8] }\nbest = { hidden = [8] }\ntargets = { bets = 0.9 }\n')}, "bets"),
    ("experiment-run-bad-protocol", EXP_RUN("two-hidden-layers", "--protocol", "mine"), {}, "mine"),
    ("experiment-run-checkpoint-0", EXP_RUN("two-hidden-layers", "--checkpoint-every", "0"), {}, "--checkpoint-every"),
    ("experiment-run-out-is-file", EXP_RUN("two-hidden-layers", out="{d}/f"), {"f": b"x"}, "f"),
    ("experiment-run-into-train-run", EXP_RUN("two-hidden-layers", out="{d}/run"), {"run": _finished_run},
     "not an experiment folder"),
    ("experiment-run-into-other-experiment", EXP_RUN("two-hidden-layers", out="{d}/exp"),
     {"exp": lambda p: (p.mkdir(), (p / "spec.toml").write_text('name = "ovr-logistic"\n'))}, "ovr-logistic"),
    ("experiment-resume-not-experiment", ["experiment", "run", "--resume", "{d}/empty"], {"empty": _directory},
     "spec.toml"),
    ("experiment-resume-and-name", ["experiment", "run", "two-hidden-layers", "--resume", "{d}/empty"],
     {"empty": _directory}, "--resume"),
    ("experiment-run-no-out", ["experiment", "run", "two-hidden-layers"], {}, "--out"),
]


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case,argv,files,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clean_line(tmp_path, capsys, monkeypatch, case, argv, files, needle):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLPLAB_MIRRORS", "http://127.0.0.1:9/{name}")  # nothing listens on port 9
    monkeypatch.setenv("PATH", "/nonexistent")  # no npm fallback either
    for name, content in files.items():
        target = tmp_path / name
        if callable(content):
            content(target)
        else:
            target.write_bytes(content)
    before = _snapshot(tmp_path)
    args = [a.replace("{d}", str(tmp_path)) for a in argv]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert needle in lines[0], lines[0]
    after = _snapshot(tmp_path)
    assert after == before, f"{case} wrote {set(after) - set(before)}"
