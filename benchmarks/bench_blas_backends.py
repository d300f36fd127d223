"""Seconds per training epoch with each of mlplab's BLAS backends (``mlplab.blas.BACKEND``).

The same Trainer loop (784-500-500-10 sigmoid/MSE by default, plain SGD lr 0.1, batch 100,
float32) on 49,000 random rows in a fresh process per backend and thread count
(``MLPLAB_BLAS=numpy|scipy``), interleaved over ``--rounds``; prints each process's epoch
times and the best epoch per backend, and with ``--json`` a final JSON line. Random rows, not
MNIST: only the speed is measured here.

    python benchmarks/bench_blas_backends.py [--arch 784-500-500-10] [--threads 1 2] [--epochs 3] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORKER = """
import sys, json, numpy as np
from mlplab.environment import blas_threads
from mlplab.network import MLP
from mlplab.training import Trainer
import mlplab.blas
threads, sizes, epochs = int(sys.argv[1]), [int(s) for s in sys.argv[2].split('-')], int(sys.argv[3])
rng = np.random.default_rng(0)
X = rng.random((49000, sizes[0]), dtype=np.float32) * 2 - 1
y = rng.integers(0, sizes[-1], 49000)
with blas_threads(threads):
    net = MLP(sizes, "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1}, seed=1)
    tr = Trainer(net, "sgd", lr=0.1, batch_size=100)
    tr.fit(X, y, epochs)
print(json.dumps({"backend": mlplab.blas.BACKEND, "epoch_s": tr.history.time_s}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="784-500-500-10")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for threads in args.threads:
            for backend in ("numpy", "scipy"):
                env = {**os.environ, "MLPLAB_BLAS": backend}
                out = subprocess.run([sys.executable, "-c", WORKER, str(threads), args.arch, str(args.epochs)],
                                     env=env, check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if r["backend"] != backend:  # NumPy's library not reachable here: nothing to compare
                    print(f"backend {backend} unavailable (got {r['backend']})")
                    continue
                results.setdefault(f"{threads} thread(s)", {}).setdefault(backend, []).extend(r["epoch_s"])
                print(f"{args.arch}  {threads} thread(s)  {backend:5s}  " + "  ".join(f"{t:.3f}" for t in r["epoch_s"]))
    summary = {}
    for key, by in results.items():
        best = {b: min(ts) for b, ts in by.items()}
        summary[key] = {"best_epoch_s": best, "epochs_s": by}
        if len(best) == 2:
            print(f"{key}: best epoch numpy {best['numpy']:.3f} s, scipy {best['scipy']:.3f} s, "
                  f"scipy/numpy {best['scipy'] / best['numpy']:.2f}")
    if args.json:
        print(json.dumps({"arch": args.arch, "results": summary}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
