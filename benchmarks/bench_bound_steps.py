"""Seconds per training epoch with bound steps (``Trainer.bind_steps``, the default) and with the
layers called one by one, in the same process, epochs interleaved.

A bound step (:meth:`mlplab.network.MLP.bind_step`) runs the same NumPy and BLAS calls on the
same buffers, so training gives the same bits either way (``tests/core/test_bound_step.py``);
what it removes is the per-call Python: shape and layout checks, buffer lookups, argument
lists. The network is sigmoid/MSE with plain SGD lr 0.1, batch 100, float32, on 49,000 random
rows (only the speed is measured here), for each ``--arch``. Prints every epoch, the best epoch
and the median of each way and their ratios; ``--json`` adds a final JSON line.

    python benchmarks/bench_bound_steps.py [--arch 784-50-10 784-500-500-10] [--threads 2] [--epochs 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))  # the first paragraph
    ap.add_argument("--arch", nargs="+", default=["784-50-10", "784-500-500-10"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4, help="timed epochs of each way (after one warm-up)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from mlplab.environment import blas_threads
    from mlplab.network import MLP
    from mlplab.training import Trainer

    summary = {}
    with blas_threads(args.threads):
        for arch in args.arch:
            sizes = [int(s) for s in arch.split("-")]
            rng = np.random.default_rng(0)
            X = rng.random((49000, sizes[0]), dtype=np.float32) * 2 - 1
            y = rng.integers(0, sizes[-1], 49000)
            trainers = {}
            for way in ("bound", "layers"):
                net = MLP(sizes, "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1}, seed=1)
                trainers[way] = Trainer(net, "sgd", lr=0.1, batch_size=100)
                trainers[way].bind_steps = way == "bound"
            for epoch in range(args.epochs + 1):
                for tr in trainers.values():
                    tr.fit(X, y, epoch + 1)
            times = {way: tr.history.time_s[1:] for way, tr in trainers.items()}
            same = all(np.array_equal(a, b) for a, b in zip(trainers["bound"].net.get_weights(),
                                                            trainers["layers"].net.get_weights()))
            best = {way: min(t) for way, t in times.items()}
            med = {way: statistics.median(t) for way, t in times.items()}
            summary[arch] = {"bound_s_per_epoch": best["bound"], "layers_s_per_epoch": best["layers"],
                             "layers_over_bound": best["layers"] / best["bound"],
                             "median_layers_over_bound": med["layers"] / med["bound"], "all_epochs_s": times,
                             "identical_weights": same, "threads": args.threads}
            for way, t in times.items():
                print(f"{arch:<16}{way:<8}" + "  ".join(f"{s:.4f}" for s in t))
            print(f"{arch:<16}best epoch: bound {best['bound']:.4f} s, layers {best['layers']:.4f} s, "
                  f"layers/bound {best['layers'] / best['bound']:.2f} (medians: {med['layers'] / med['bound']:.2f}); "
                  f"identical weights: {same}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
