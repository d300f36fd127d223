"""Fit time and test accuracy: mlplab.estimator.MLPClassifier vs sklearn.neural_network.MLPClassifier.

Same hyperparameters for both (defaults: one hidden layer of 256 ReLU units, softmax output,
Adam lr 1e-3, batch 200, alpha 1e-4, Glorot-uniform init, a fixed number of epochs: no early
stopping, ``tol=0`` and ``n_iter_no_change`` larger than the epochs, so scikit-learn runs them
all), the same data, in the same process with the same BLAS thread limit.

``--input-dtype float32`` (default) hands both the same float32 arrays, so both compute in
float32: the comparison of the implementations alone. ``--input-dtype float64`` hands both
what ``X / 255.0`` gives a user: scikit-learn then computes in float64, mlplab in its default
float32 (``dtype="float32"``): the comparison of what each does with the same user code.

* digits: scikit-learn's 8x8 digits, stratified 70/30 split (seed 0), pixels / 16.
* MNIST: the canonical 60,000 / 10,000 split, pixels / 255, from ``mlplab.data.load_dataset``
  (folder ``$MLPLAB_DATA_DIR`` or ``--data-dir``, no download); skipped with a message if absent.

``--protocol independent`` (default): each library initialises and shuffles with its own
random generator from the repeat's seed, as a user's two fits would; the accuracies then differ
by what the seeds do. ``--protocol paired``: for each seed both start from the same initial
weights (mlplab's Glorot draw, handed to scikit-learn with :func:`mlplab.interchange.to_sklearn`)
and see the same minibatches (the training set permuted once by the seed, ``shuffle=False``).
The two then compute the same steps (``tests/estimator/test_sklearn_trajectory.py`` shows it to
1e-9 in float64), so their accuracies differ only by float32 rounding: the paired difference and
the number of test predictions on which they disagree measure that.

Prints a table with the speed ratio (sklearn time / mlplab time); ``--json`` adds a final JSON line.

    python benchmarks/bench_estimator.py [--epochs 10] [--digits-epochs 50] [--threads 2] [--repeats 3]
        [--protocol independent|paired] [--hidden 256] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np


def load_digits_split(dtype=np.float32):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(dtype)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    return Xtr, ytr, Xte, yte


def load_mnist(data_dir: str | None, dtype=np.float32):
    from mlplab.data import load_dataset

    ds = load_dataset("mnist", data_dir=data_dir, download=False)
    scale = dtype(1.0 / ds.pixel_max)
    return (ds.X_train.astype(dtype) * scale, ds.y_train.astype(np.int64),
            ds.X_test.astype(dtype) * scale, ds.y_test.astype(np.int64))


def hyperparameters(args, epochs: int) -> dict:
    return dict(hidden_layer_sizes=tuple(args.hidden), activation="relu", learning_rate_init=args.lr,
                batch_size=args.batch_size, alpha=args.alpha, max_iter=epochs, tol=0.0,
                n_iter_no_change=epochs + 10, early_stopping=False, shuffle=True, random_state=args.seed)


def paired_start(params: dict, data) -> tuple[object, object, tuple]:
    """The paired protocol's two unfitted-in-effect models and training data: mlplab's estimator
    around a freshly initialised network (seed ``params['random_state']``), scikit-learn's copy
    of it, both warm-starting with ``shuffle=False``, and the training set permuted by the seed."""
    from mlplab.estimator import MLPClassifier
    from mlplab.interchange import to_sklearn
    from mlplab.network import MLP

    Xtr, ytr, Xte, yte = data
    seed = int(params["random_state"])
    perm = np.random.default_rng(seed).permutation(len(ytr))
    classes = np.unique(ytr)
    sizes = [Xtr.shape[1], *params["hidden_layer_sizes"], len(classes)]
    net = MLP(sizes, params["activation"], "softmax", loss="cross_entropy", init="glorot", dtype="float32", seed=seed)
    fit_params = {k: v for k, v in params.items() if k not in ("hidden_layer_sizes", "activation")}
    ours = MLPClassifier.from_mlp(net, classes, n_features_in=Xtr.shape[1], optimizer="adam",
                                  **dict(fit_params, shuffle=False, warm_start=True))
    theirs = to_sklearn(ours)  # the same weights (a copy) and hyperparameters
    theirs.set_params(warm_start=True, shuffle=False)
    return ours, theirs, (Xtr[perm], ytr[perm], Xte, yte)


def run_one(kind: str, params: dict, data, est=None) -> dict:
    """Fit ``kind``'s estimator (``est`` if given: the paired protocol's) and score it."""
    from sklearn.exceptions import ConvergenceWarning

    Xtr, ytr, Xte, yte = data
    if est is None and kind == "mlplab":
        from mlplab.estimator import MLPClassifier

        est = MLPClassifier(optimizer="adam", dtype="float32", **params)
    elif est is None:
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(solver="adam", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)
        fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = est.predict(Xte)
    pred_s = time.perf_counter() - t0
    acc = float(np.mean(pred == yte))
    return {"fit_s": fit_s, "epochs": len(est.loss_curve_), "s_per_epoch": fit_s / max(len(est.loss_curve_), 1),
            "test_accuracy": acc, "predict_s": pred_s, "final_loss": float(est.loss_curve_[-1]), "pred": pred}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10, help="epochs on MNIST")
    ap.add_argument("--digits-epochs", type=int, default=50, help="epochs on digits")
    ap.add_argument("--hidden", type=int, nargs="+", default=[256])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--alpha", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--data-dir", default=os.environ.get("MLPLAB_DATA_DIR"))
    ap.add_argument("--no-mnist", action="store_true")
    ap.add_argument("--repeats", type=int, default=1,
                    help="fits per implementation, repeat i with seed --seed + i (median time, mean accuracy)")
    ap.add_argument("--input-dtype", choices=("float32", "float64"), default="float32",
                    help="dtype of the arrays both estimators are given (see the module docstring)")
    ap.add_argument("--protocol", choices=("independent", "paired"), default="independent",
                    help="independent seeds, or the same start and minibatches for both (see the module docstring)")
    ap.add_argument("--json", action="store_true", help="print a final JSON line")
    args = ap.parse_args(argv)
    in_dtype = np.dtype(args.input_dtype).type
    if args.protocol == "paired" and args.input_dtype != "float32":
        ap.error("--protocol paired needs --input-dtype float32 (both libraries then compute in float32)")

    from mlplab.environment import blas_threads

    datasets: list[tuple[str, int, object]] = [("digits", args.digits_epochs, load_digits_split(in_dtype))]
    if not args.no_mnist:
        try:
            datasets.append(("mnist", args.epochs, load_mnist(args.data_dir, in_dtype)))
        except Exception as exc:  # noqa: BLE001 - any failure to find the data means "skip"
            print(f"MNIST skipped: {exc} (set MLPLAB_DATA_DIR or --data-dir)", file=sys.stderr)

    results: dict[str, dict] = {}
    with blas_threads(args.threads):
        for kind in ("mlplab", "sklearn"):  # untimed: imports and first-call setup of each
            run_one(kind, hyperparameters(args, 1), datasets[0][2])
        for name, epochs, data in datasets:
            params = hyperparameters(args, epochs)
            runs: dict[str, list[dict]] = {"mlplab": [], "sklearn": []}
            disagree = []
            for rep in range(args.repeats):  # alternate the order: load changes hit both alike
                seeded = dict(params, random_state=args.seed + rep)  # each repeat its own seed
                models, fit_data = {"mlplab": None, "sklearn": None}, data
                if args.protocol == "paired":
                    models["mlplab"], models["sklearn"], fit_data = paired_start(seeded, data)
                for kind in (("mlplab", "sklearn") if rep % 2 == 0 else ("sklearn", "mlplab")):
                    runs[kind].append(run_one(kind, seeded, fit_data, models[kind]))
                disagree.append(int(np.sum(runs["mlplab"][-1].pop("pred") != runs["sklearn"][-1].pop("pred"))))
            res = {}
            for kind, lst in runs.items():  # median times (an even count: the mean of the middle two)
                accs = np.array([r["test_accuracy"] for r in lst])
                med = {k: statistics.median(r[k] for r in lst) for k in ("fit_s", "s_per_epoch", "predict_s",
                                                                         "final_loss")}
                res[kind] = {**med, "epochs": max(r["epochs"] for r in lst), "fit_s_all": [r["fit_s"] for r in lst],
                             "final_loss_all": [r["final_loss"] for r in lst],
                             "test_accuracy_all": accs.tolist(), "test_accuracy_mean": float(accs.mean()),
                             "test_accuracy_sd": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
                             "seeds": [args.seed + i for i in range(args.repeats)]}
            res["speedup"] = res["sklearn"]["fit_s"] / res["mlplab"]["fit_s"]
            diffs = np.subtract(res["mlplab"]["test_accuracy_all"], res["sklearn"]["test_accuracy_all"])
            res["accuracy_difference_mean"] = float(diffs.mean())  # mlplab - sklearn, per seed
            res["accuracy_difference_sd"] = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
            res["predictions_disagreeing"] = disagree  # test rows the two predict differently, per seed
            res["n_train"], res["n_test"] = len(data[1]), len(data[3])
            results[name] = res

    print(f"hidden {tuple(args.hidden)} relu, adam lr {args.lr:g}, batch {args.batch_size}, alpha {args.alpha:g}, "
          f"{args.input_dtype} input (mlplab computes in float32), BLAS threads {args.threads}, "
          f"median of {args.repeats} fit(s), seeds {args.seed}..{args.seed + args.repeats - 1}, "
          f"{args.protocol} protocol; test accuracy: mean over the seeds")
    head = f"{'dataset':8} {'impl':8} {'epochs':>6} {'fit s':>8} {'s/epoch':>8} {'test acc':>9} {'sd':>7}"
    print(head)
    print("-" * len(head))
    for name, res in results.items():
        for kind in ("mlplab", "sklearn"):
            r = res[kind]
            print(f"{name:8} {kind:8} {r['epochs']:6d} {r['fit_s']:8.2f} {r['s_per_epoch']:8.3f} "
                  f"{r['test_accuracy_mean']:9.4f} {r['test_accuracy_sd']:7.4f}")
        diff = res["mlplab"]["test_accuracy_mean"] - res["sklearn"]["test_accuracy_mean"]
        print(f"{name:8} speed ratio sklearn/mlplab: {res['speedup']:.2f}x  (mean accuracy difference {diff:+.4f}"
              f" ± {res['accuracy_difference_sd']:.4f} over the seeds; test predictions that differ: "
              f"{', '.join(map(str, res['predictions_disagreeing']))} of {res['n_test']:,})")
    if args.json:
        print(json.dumps({"threads": args.threads, "hidden": args.hidden, "input_dtype": args.input_dtype,
                          "protocol": args.protocol, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
