"""Seconds per full-batch epoch: K networks trained one by one vs as one stacked model.

The ``relu-softmax-full-batch`` setting: 784-32-10 ReLU/softmax, cross-entropy, plain SGD, all
60,000 MNIST training images per step, float32. For K = 1, 2, 4 models (learning rates 0.05,
0.005, ...) and each BLAS thread count, the same run times

* alone: the K models one after the other (K times one model's epoch),
* stacked: :class:`mlplab.stacked.StackedTrainer` (one wide first layer),

and prints the ratio. ``--json`` adds a final JSON line.

    python benchmarks/bench_stacked.py [--epochs 5] [--threads 1 2] [--k 1 2 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _trainers(k: int):
    from mlplab.network import MLP
    from mlplab.training import Trainer

    lrs = [0.05 * 0.1 ** (i % 2) / (1 + i // 2) for i in range(k)]
    return [Trainer(MLP([784, 32, 10], "relu", "softmax", "cross_entropy", init="he", seed=i), "sgd", lr=lr,
                    batch_size=None) for i, lr in enumerate(lrs)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from mlplab.environment import blas_threads

    from mlplab.data import load_dataset
    from mlplab.stacked import StackedTrainer

    ds = load_dataset("mnist", data_dir=args.data_dir)
    X = ds.X_train.astype(np.float32) / np.float32(255)
    y = ds.y_train.astype(np.int64)
    results = {}
    for th in args.threads:
        with blas_threads(th):
            one = _trainers(1)[0]
            one.fit(X, y, 1)  # warm-up
            t0 = time.perf_counter()
            one.fit(X, y, 1 + args.epochs)
            single = (time.perf_counter() - t0) / args.epochs
            for k in args.k:
                st = StackedTrainer(_trainers(k))
                st.fit(X, y, 1)
                t0 = time.perf_counter()
                st.fit(X, y, 1 + args.epochs)
                stacked = (time.perf_counter() - t0) / args.epochs
                results[f"threads={th},k={k}"] = {"threads": th, "k": k, "one_model_s_per_epoch": single,
                                                  "alone_s_per_epoch": k * single,
                                                  "stacked_s_per_epoch": stacked,
                                                  "speedup": k * single / stacked}
                print(f"threads {th}  K={k}:  one by one {k * single:.3f} s/epoch   stacked {stacked:.3f} s/epoch   "
                      f"speed-up {k * single / stacked:.2f}x")
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
