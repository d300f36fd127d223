"""Where a training epoch's time goes: every call of mlplab's bound minibatch step timed on its own.

Two recipes (``--recipe``):

* ``textbook``: the Trainer's minibatch loop (``Trainer._run_epoch`` with bound steps) on the
  textbook's sigmoid/MSE networks, plain SGD lr 0.1, batch 100: the products carry the SGD step
  (``W = W - x.T @ dz`` in one ``gemm``);
* ``estimator``: the minibatch step of ``mlplab.estimator.MLPClassifier`` with its defaults
  (ReLU, softmax cross-entropy, Adam lr 1e-3, L2 alpha 1e-4, batch 200), beside scikit-learn's
  MLPClassifier with the same hyperparameters on the same rows (its epoch loop, timed as
  ``bench_training.py`` times it).

The loop is replayed call by call on the same buffers: the epoch's shuffle, the minibatch
gathers, each forward call, the loss, each backward call, the optimizer. Each call is timed with
``time.perf_counter``; the calls are summed over an epoch and grouped:

* products: the ``gemm``/``gemv`` calls (BLAS);
* elementwise: activations, their derivatives, bias copies, the loss and its gradient, the
  learning-rate scaling (textbook) or the L2 penalty (estimator);
* optimizer: the Adam step (estimator);
* gathers: the epoch's shuffle, and copying each minibatch's rows and labels out of the
  training set;
* other: the textbook loop's running accuracy count.

The timed calls are compared with the loop's own epoch time, measured in the same process
without the per-call timers (the timers and the cache misses between timed calls make the sum
of the calls a little larger than the untimed epoch; the estimator's is the epoch loop of a
one-epoch ``fit``, without its input checks, as scikit-learn's). Beside them, the matmul floor of the same epoch
(``bench_training.time_floor``, every way, the same batch size) measured in the same process.
49,000 random rows, float32 (only the speed is measured here).

    python benchmarks/bench_step_profile.py [--recipe textbook|estimator] [--arch 784-50-10 ...] [--threads 2] [--epochs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

GROUPS = ("products", "elementwise", "optimizer", "gathers", "other")


def describe(call) -> tuple[str, str]:
    """``(group, text)`` for one bound call: what it does and on which shapes."""
    if hasattr(call, "keep"):  # mlplab.blas.bind_gemm / bind_gemv
        a, b, out = call.keep[:3]
        kind = "gemv" if b.ndim == 1 else "gemm"
        return "products", f"{kind} {a.shape}x{b.shape}->{out.shape}"
    func = getattr(call, "func", call)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__
    shapes = [a.shape for a in getattr(call, "args", ()) if isinstance(a, np.ndarray)]
    return "elementwise", f"{name} {shapes[0] if shapes else ''}".strip()


#: the two training recipes profiled: the textbook's (``Trainer``, fused SGD) and the
#: scikit-learn compatible estimator's default (its minibatch step, Adam, L2)
RECIPES = {
    "textbook": {"archs": ["784-50-10", "784-500-500-10"], "batch": 100,
                 "what": "sigmoid/MSE, SGD lr 0.1 fused into the products, batch 100 (the Trainer's loop)"},
    "estimator": {"archs": ["784-256-10"], "batch": 200,
                  "what": "ReLU/softmax cross-entropy, Adam lr 1e-3, L2 alpha 1e-4, batch 200 "
                          "(mlplab.estimator.MLPClassifier's minibatch step)"},
}


def _textbook_calls(sizes: list[int], X, y, bs: int):
    from mlplab.network import MLP
    from mlplab.training import Trainer, bind_training_step

    net = MLP(sizes, "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1}, seed=1)
    trainer = Trainer(net, "sgd", lr=0.1, batch_size=bs)
    trainer.fit(X, y, 1)  # warm-up: buffers, BLAS threads, caches
    pre = trainer.optimizer.prescale()
    xb = net.layers[0]._buffer("xb", (bs, X.shape[1]), net.dtype)
    yb = net.layers[0]._buffer("yb", (bs,), np.int64)
    step = bind_training_step(net, xb, yb, pre)
    calls = [("forward", c) for c in step.forward] + [("loss", step.loss), ("accuracy", step.correct)]
    calls += [("scale", lambda: np.multiply(step.grad, pre, out=step.grad))]
    calls += [("backward", c) for c in step.backward]

    def untimed(epochs: int) -> list[float]:
        trainer.fit(X, y, trainer.epochs_done + epochs)
        return list(trainer.history.time_s[-epochs:])

    return calls, xb, yb, trainer.rng, untimed


def _estimator_calls(sizes: list[int], X, y, bs: int):
    from mlplab.blas import dot
    from mlplab.estimator import MLPClassifier
    from mlplab.training import bind_training_step

    alpha = 1e-4
    est = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), batch_size=bs, alpha=alpha, max_iter=1,
                        warm_start=True, random_state=1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)  # warm-up, and the network and optimizer to profile
    net, opt = est.net_, est._optimizer
    xb = net.layers[0]._buffer("est_xb", (bs, X.shape[1]), net.dtype)
    yb = net.layers[0]._buffer("est_yb", (bs,), np.int64)
    net.l2 = alpha / bs
    step = bind_training_step(net, xb, yb, None)
    calls = [("forward", c) for c in step.forward] + [("loss", step.loss)]
    calls += [("penalty", lambda: sum(dot(layer.W, layer.W) for layer in net.dense_layers))]
    calls += [("backward", c) for c in step.backward]
    calls += [("optimizer", lambda: opt.step(net.gradients()))]

    def untimed(epochs: int) -> list[float]:
        """Seconds of ``epochs`` one-epoch fits (warm start, max_iter=1), each its epoch loop
        (``_train``) only, as scikit-learn's is timed."""
        from bench_training import timing_method

        times: list[float] = []
        with timing_method(est, "_train", times), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(epochs):
                est.fit(X, y)
        return times

    return calls, xb, yb, np.random.default_rng(2), untimed


def profile_epochs(sizes: list[int], epochs: int, recipe: str = "textbook", n: int = 49000) -> dict:
    bs = RECIPES[recipe]["batch"]
    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0]), dtype=np.float32) * 2 - 1
    y = rng.integers(0, sizes[-1], n)
    calls, xb, yb, order_rng, untimed = (_textbook_calls if recipe == "textbook" else _estimator_calls)(sizes, X, y, bs)
    labels = []
    texts = {"loss": "loss value and gradient", "scale": "gradient *= lr",
             "penalty": "L2 penalty (squared norms)", "optimizer": "Adam step (7 passes per parameter)"}
    for where, c in calls:
        if where in ("forward", "backward"):
            group, text = describe(c)
        elif where == "accuracy":
            group, text = "other", "accuracy count (argmax, compare)"
        else:
            group, text = ("optimizer" if where == "optimizer" else "elementwise"), texts[where]
        labels.append((where, group, text))
    per_call = np.zeros(len(calls))
    gather = shuffle = 0.0
    clock = time.perf_counter
    starts = range(0, n - bs + 1, bs)
    epoch_calls = []
    for _ in range(epochs):
        before = per_call.sum() + gather + shuffle
        t = clock()
        order = order_rng.permutation(n)
        shuffle += clock() - t
        for s in starts:
            idx = order[s:s + bs]
            t = clock()
            X.take(idx, axis=0, out=xb, mode="clip")
            y.take(idx, out=yb, mode="clip")
            gather += clock() - t
            for j, (_, c) in enumerate(calls):
                t = clock()
                c()
                per_call[j] += clock() - t
        epoch_calls.append(per_call.sum() + gather + shuffle - before)
    # the loop's own epochs, without per-call timers, in the same process
    trainer_epochs = untimed(epochs)
    per_call /= epochs
    gather /= epochs
    shuffle /= epochs
    timed = float(per_call.sum() + gather + shuffle)
    epoch = statistics.median(trainer_epochs)
    groups = {g: 0.0 for g in GROUPS}
    for (where, group, text), t in zip(labels, per_call):
        groups[group] += float(t)
    groups["gathers"] += gather + shuffle
    return {"calls": [{"where": w, "group": g, "what": text, "s_per_epoch": float(t)}
                      for (w, g, text), t in zip(labels, per_call)],
            "gather_s_per_epoch": gather, "shuffle_s_per_epoch": shuffle,
            "timed_calls_s_per_epoch": timed, "trainer_epoch_s": epoch, "trainer_epochs_s": trainer_epochs,
            "timed_epochs_s": epoch_calls, "groups_s_per_epoch": groups}


def sklearn_epoch_s(sizes: list[int], epochs: int, n: int = 49000) -> tuple[list[float], str]:
    """scikit-learn's MLPClassifier with the estimator recipe's hyperparameters on the same
    rows: seconds of each of ``epochs`` warm-started one-epoch fits (its epoch loop only, as
    ``bench_training.sklearn_epochs`` times it), after one warm-up epoch."""
    from bench_training import sklearn_epochs
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0]), dtype=np.float32) * 2 - 1
    y = rng.integers(0, sizes[-1], n)
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam",
                        learning_rate_init=1e-3, alpha=1e-4, batch_size=RECIPES["estimator"]["batch"],
                        max_iter=1, warm_start=True, tol=0.0, n_iter_no_change=10**6,
                        random_state=np.random.RandomState(0))
    sklearn_epochs(clf, X, y, 1)
    return sklearn_epochs(clf, X, y, epochs)


def main() -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="textbook")
    ap.add_argument("--arch", nargs="+", help="default: 784-50-10 784-500-500-10 (textbook), 784-256-10 (estimator)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from bench_training import FLOOR_WAYS, _floor_way, time_floor
    from mlplab.environment import blas_threads

    recipe = RECIPES[args.recipe]
    bs = recipe["batch"]
    summary = {}
    with blas_threads(args.threads):
        for arch in args.arch or recipe["archs"]:
            sizes = [int(s) for s in arch.split("-")]
            r = profile_epochs(sizes, args.epochs, args.recipe)
            r["floor_s_per_epoch"] = {_floor_way(lib, layout): time_floor(sizes, 49000, args.epochs, lib=lib,
                                                                          layout=layout, batch=bs)
                                      for lib, layout in FLOOR_WAYS}
            floor = min(r["floor_s_per_epoch"].values())
            r.update(threads=args.threads, epochs=args.epochs, recipe=args.recipe, batch=bs, what=recipe["what"])
            if args.recipe == "estimator":
                sk, timed = sklearn_epoch_s(sizes, args.epochs)
                r["sklearn_epoch_s"], r["sklearn_timed"] = statistics.median(sk), timed
            summary[arch] = r
            print(f"\n{arch}: {recipe['what']}; {args.threads} threads, seconds per epoch (mean of {args.epochs})")
            for c in r["calls"]:
                print(f"  {c['where']:<10}{c['group']:<12}{c['s_per_epoch']:8.4f}  {c['what']}")
            print(f"  {'gathers':<22}{r['gather_s_per_epoch']:8.4f}  rows and labels of the minibatch")
            print(f"  {'shuffle':<22}{r['shuffle_s_per_epoch']:8.4f}  permutation of the rows")
            ways = ", ".join(f"{k} {v:.4f}" for k, v in r["floor_s_per_epoch"].items())
            print(f"  matmul floor {floor:.4f} s ({ways})")
            for g, t in r["groups_s_per_epoch"].items():
                print(f"  {g:<12}{t:8.4f} s  {t / floor:5.2f} x floor")
            print(f"  timed calls {r['timed_calls_s_per_epoch']:.4f} s ({r['timed_calls_s_per_epoch'] / floor:.2f} x floor); "
                  f"the loop's epoch without the timers (median) {r['trainer_epoch_s']:.4f} s "
                  f"({r['trainer_epoch_s'] / floor:.2f} x floor)")
            if "sklearn_epoch_s" in r:
                print(f"  scikit-learn's MLPClassifier, same recipe: {r['sklearn_epoch_s']:.4f} s per epoch "
                      f"({r['sklearn_timed']}), {r['sklearn_epoch_s'] / r['trainer_epoch_s']:.2f} x mlplab's")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
