"""Seconds per training epoch: mlplab vs PyTorch vs scikit-learn, and the matmul floor.

The textbook protocol's training set: 49,000 MNIST images (stratified 70/30 split of all 70,000,
seed 123), pixels scaled to [-1, 1], float32, batch 100, plain SGD lr 0.1, sigmoid layers.
For each architecture the same run measures

* mlplab (MSE on sigmoid outputs, as the textbook),
* PyTorch on the CPU with the same thread count (same network, loss and optimizer),
* scikit-learn's MLPClassifier (logistic hidden layers, its own softmax/log-loss output,
  solver sgd, no momentum, no L2),
* the floor: only the matrix multiplications one epoch needs (forward 1 per layer, backward
  1 weight-gradient per layer + 1 input-gradient per layer but the first), into preallocated
  outputs: no implementation can beat it on this machine.

Also inference on the 21,000 test images (784-500-500-10) and the peak memory (tracemalloc)
of a full mlplab epoch. ``--json`` prints a final JSON line keyed by architecture.

    python benchmarks/bench_training.py [--epochs 3] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np


def load_split(data_dir: str | None):
    from mlplab.data import load_dataset, splits
    from mlplab.data.preprocessing import Scaler

    ds = load_dataset("mnist", data_dir=data_dir)
    X, y = splits.all_samples(ds)
    tr, te = splits.sklearn_train_test_split_indices(len(y), y, test_size=0.3, random_state=123)
    sc = Scaler("symmetric", pixel_max=255)
    return sc.transform(X[tr]), y[tr].astype(np.int64), sc.transform(X[te]), y[te].astype(np.int64)


def time_mlplab(sizes, X, y, epochs):
    from mlplab.network import MLP
    from mlplab.training import Trainer

    net = MLP(sizes, "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1}, seed=123)
    tr = Trainer(net, "sgd", lr=0.1, batch_size=100, train_metrics="running")
    tr.fit(X, y, epochs)
    return statistics.median(tr.history.time_s), net, tr


def mlplab_epoch_peak_memory(sizes, X, y):
    from mlplab.network import MLP
    from mlplab.training import Trainer

    net = MLP(sizes, "sigmoid", "sigmoid", "mse", init="normal", init_params={"std": 0.1}, seed=123)
    tr = Trainer(net, "sgd", lr=0.1, batch_size=100)
    tr.fit(X[:1000], y[:1000], 1)  # buffers allocated once
    tracemalloc.start()
    tr.fit(X[:1000], y[:1000], 2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def time_torch(sizes, X, y, epochs, threads):
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(threads)
    torch.manual_seed(123)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    eye = torch.eye(sizes[-1])
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(yt))
        for s in range(0, len(yt), 100):
            idx = perm[s:s + 100]
            xb, tb = Xt[idx], eye[yt[idx]]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = ((out - tb) ** 2).sum(dim=1).mean()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), model


def time_sklearn(sizes, X, y, epochs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="logistic", solver="sgd",
                        learning_rate_init=0.1, momentum=0.0, nesterovs_momentum=False, alpha=0.0,
                        batch_size=100, max_iter=epochs, tol=0.0, n_iter_no_change=10**6, random_state=123,
                        shuffle=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(X, y)
        return (time.perf_counter() - t0) / epochs


def time_floor(sizes, n, epochs, dtype=np.float32):
    rng = np.random.default_rng(0)
    Ws = [rng.normal(0, 0.1, (a, b)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    acts = [rng.random((100, s), dtype=dtype) for s in sizes]
    dWs = [np.empty_like(W) for W in Ws]
    dXs = [np.empty((100, s), dtype) for s in sizes]
    batches = n // 100
    times = []
    for _ in range(epochs + 1):  # the first pass warms up BLAS threads and caches; min is the floor
        t0 = time.perf_counter()
        for _ in range(batches):
            for i, W in enumerate(Ws):
                np.matmul(acts[i], W, out=acts[i + 1])
            g = acts[-1]
            for i in range(len(Ws) - 1, -1, -1):
                np.matmul(acts[i].T, g, out=dWs[i])
                if i > 0:
                    np.matmul(g, Ws[i].T, out=dXs[i])
                    g = dXs[i]
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def time_inference(fn, X, repeats=5):
    fn(X[:100])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per implementation (median reported)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arch", action="append", help="e.g. 784-500-500-10 (repeatable)")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from mlplab.environment import environment_info

    archs = args.arch or ["784-500-500-10", "784-50-10"]
    X, y, Xte, yte = load_split(args.data_dir)
    results: dict[str, dict] = {}
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for arch in archs:
            sizes = [int(s) for s in arch.split("-")]
            floor = time_floor(sizes, len(y), args.epochs)
            ours, net, _ = time_mlplab(sizes, X, y, args.epochs)
            torch_s, tmodel = time_torch(sizes, X, y, args.epochs, args.threads)
            sk = None if args.no_sklearn else time_sklearn(sizes, X, y, max(1, min(args.epochs, 2)))
            r = {"mlplab_s_per_epoch": ours, "torch_s_per_epoch": torch_s, "sklearn_s_per_epoch": sk,
                 "floor_s_per_epoch": floor, "mlplab_over_floor": ours / floor,
                 "torch_over_mlplab": None if torch_s is None else torch_s / ours,
                 "sklearn_over_mlplab": None if sk is None else sk / ours,
                 "mlplab_test_accuracy": float(np.mean(net.predict(Xte) == yte))}
            r["mlplab_infer_s"] = time_inference(net.predict_proba, Xte)
            if tmodel is not None:
                import torch

                with torch.inference_mode():
                    Xt = torch.from_numpy(Xte)
                    r["torch_infer_s"] = time_inference(lambda a: tmodel(a if isinstance(a, torch.Tensor)
                                                                          else torch.from_numpy(a)), Xt)
            r["mlplab_epoch_peak_tracemalloc_bytes_1000_rows"] = mlplab_epoch_peak_memory(sizes, X, y)
            results[arch] = r
    env = environment_info()
    print(f"threads={args.threads}  numpy {env['versions']['numpy']}  torch {env['versions']['torch']}  "
          f"sklearn {env['versions']['sklearn']}  BLAS {[b.get('internal_api') for b in env['blas']]}")
    head = f"{'architecture':<16}{'floor':>9}{'mlplab':>9}{'torch':>9}{'sklearn':>9}{'ours/floor':>12}{'torch/ours':>12}{'sk/ours':>9}"
    print(head)
    fmt = lambda v, w=9, p=3: f"{'-':>{w}}" if v is None else f"{v:>{w}.{p}f}"
    for arch, r in results.items():
        print(f"{arch:<16}{fmt(r['floor_s_per_epoch'])}{fmt(r['mlplab_s_per_epoch'])}{fmt(r['torch_s_per_epoch'])}"
              f"{fmt(r['sklearn_s_per_epoch'])}{fmt(r['mlplab_over_floor'], 12, 2)}{fmt(r['torch_over_mlplab'], 12, 2)}"
              f"{fmt(r['sklearn_over_mlplab'], 9, 2)}")
    for arch, r in results.items():
        print(f"{arch}: inference on {len(yte)} rows mlplab {r['mlplab_infer_s']:.4f} s, torch "
              f"{r.get('torch_infer_s', float('nan')):.4f} s; epoch peak traced memory "
              f"{r['mlplab_epoch_peak_tracemalloc_bytes_1000_rows'] / 1024:.0f} KiB (1000-row set)")
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
