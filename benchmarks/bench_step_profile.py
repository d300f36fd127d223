"""Where a training epoch's time goes: every call of mlplab's bound training step timed on its own.

The Trainer's minibatch loop (``Trainer._run_epoch`` with bound steps, plain SGD) is replayed call
by call on the same buffers: the epoch's shuffle, the two minibatch gathers, each forward call,
the loss, the accuracy count, the learning-rate scaling of the output gradient and each backward
call (the products carry the SGD step: ``W = W - x.T @ dz`` in one ``gemm``). Each call is timed
with ``time.perf_counter``; the calls are summed over an epoch and grouped:

* products: the ``gemm``/``gemv`` calls (BLAS);
* elementwise: activations, their derivatives, bias copies, the loss and its gradient;
* gathers: the epoch's shuffle, and copying each minibatch's rows and labels out of the
  training set;
* other: the running accuracy count.

The timed calls are compared with the Trainer's own epoch time, measured in the same process
without the per-call timers (the timers and the cache misses between timed calls make the sum
of the calls a little larger than the untimed epoch).

Beside them, the matmul floor of the same epoch (``bench_training.time_floor``, both activation
layouts) measured in the same process. The network is the textbook's sigmoid/MSE with SGD lr 0.1,
batch 100, float32, on 49,000 random rows (only the speed is measured here).

    python benchmarks/bench_step_profile.py [--arch 784-50-10 784-500-500-10] [--threads 2] [--epochs 3] [--json]
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

GROUPS = ("products", "elementwise", "gathers", "other")


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


def profile_epochs(sizes: list[int], epochs: int, n: int = 49000, bs: int = 100) -> dict:
    from mlplab.network import MLP
    from mlplab.training import Trainer, bind_training_step

    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0]), dtype=np.float32) * 2 - 1
    y = rng.integers(0, sizes[-1], n)
    net = MLP(sizes, "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1}, seed=1)
    trainer = Trainer(net, "sgd", lr=0.1, batch_size=bs)
    trainer.fit(X, y, 1)  # warm-up: buffers, BLAS threads, caches
    pre = trainer.optimizer.prescale()
    xb = net.layers[0]._buffer("xb", (bs, sizes[0]), net.dtype)
    yb = net.layers[0]._buffer("yb", (bs,), np.int64)
    step = bind_training_step(net, xb, yb, pre)
    calls = [("forward", c) for c in step.forward] + [("loss", step.loss), ("accuracy", step.correct)]
    calls += [("scale", lambda: np.multiply(step.grad, pre, out=step.grad))]
    calls += [("backward", c) for c in step.backward]
    labels = []
    for where, c in calls:
        if where in ("forward", "backward"):
            group, text = describe(c)
        elif where == "accuracy":
            group, text = "other", "accuracy count (argmax, compare)"
        else:
            group, text = "elementwise", {"loss": "loss value and gradient", "scale": "gradient *= lr"}[where]
        labels.append((where, group, text))
    per_call = np.zeros(len(calls))
    gather = shuffle = 0.0
    clock = time.perf_counter
    starts = range(0, n - bs + 1, bs)
    epoch_calls = []
    for _ in range(epochs):
        before = per_call.sum() + gather + shuffle
        t = clock()
        order = trainer.rng.permutation(n)
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
    # the Trainer's own epochs, without per-call timers, in the same process
    trainer.fit(X, y, 1 + epochs)
    trainer_epochs = trainer.history.time_s[-epochs:]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--arch", nargs="+", default=["784-50-10", "784-500-500-10"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from bench_training import FLOOR_WAYS, _floor_way, time_floor
    from mlplab.environment import blas_threads

    summary = {}
    with blas_threads(args.threads):
        for arch in args.arch:
            sizes = [int(s) for s in arch.split("-")]
            r = profile_epochs(sizes, args.epochs)
            r["floor_s_per_epoch"] = {_floor_way(lib, layout): time_floor(sizes, 49000, args.epochs, lib=lib, layout=layout)
                                      for lib, layout in FLOOR_WAYS}
            floor = min(r["floor_s_per_epoch"].values())
            r["threads"], r["epochs"] = args.threads, args.epochs
            summary[arch] = r
            print(f"\n{arch}: {args.threads} threads, batch 100, seconds per epoch (mean of {args.epochs})")
            for c in r["calls"]:
                print(f"  {c['where']:<9}{c['group']:<12}{c['s_per_epoch']:8.4f}  {c['what']}")
            print(f"  {'gathers':<21}{r['gather_s_per_epoch']:8.4f}  rows and labels of the minibatch")
            print(f"  {'shuffle':<21}{r['shuffle_s_per_epoch']:8.4f}  permutation of the rows")
            ways = ", ".join(f"{k} {v:.4f}" for k, v in r["floor_s_per_epoch"].items())
            print(f"  matmul floor {floor:.4f} s ({ways})")
            for g, t in r["groups_s_per_epoch"].items():
                print(f"  {g:<12}{t:8.4f} s  {t / floor:5.2f} x floor")
            print(f"  timed calls {r['timed_calls_s_per_epoch']:.4f} s ({r['timed_calls_s_per_epoch'] / floor:.2f} x floor); "
                  f"Trainer epoch without the timers (median) {r['trainer_epoch_s']:.4f} s "
                  f"({r['trainer_epoch_s'] / floor:.2f} x floor)")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
