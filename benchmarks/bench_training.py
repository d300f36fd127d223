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
  outputs, through NumPy's BLAS (``np.matmul``; the one mlplab uses, see ``mlplab.blas``) and
  through SciPy's (``scipy.linalg.blas``, a separate OpenBLAS build), and through NumPy's
  with the minibatch stored one feature per row instead of one sample per row (see
  ``time_floor``); the fastest of the three is the floor for implementations whose products go
  through these BLAS builds (mlplab's, and scikit-learn's through NumPy's). PyTorch computes
  with its own libraries (MKL / oneDNN in its wheels) and can run below it.

Each implementation trains ``--epochs`` epochs and reports the median of its per-epoch times
(the best round's are in the JSON, ``epoch_s_best_round``); each epoch is timed as the
implementation runs it:

* mlplab: ``Trainer.history.time_s``, the epoch loop (shuffle, minibatch gathers, steps);
  ``fit()``'s input checks and setup and the end-of-epoch bookkeeping (history, weight
  snapshot) are not in it;
* PyTorch: the loop over one epoch's minibatches (``randperm``, gathers, steps); the model and
  optimizer are built before;
* scikit-learn: one ``fit()`` per epoch (``warm_start=True``, ``max_iter=1``; the
  ConvergenceWarning each call raises is silenced), its weights going on from the previous
  call and its shuffles from one ``RandomState`` (an integer ``random_state`` would start the
  stream again in every call), so the calls are consecutive epochs of one training. What is
  timed is scikit-learn's epoch loop inside each call (its ``_fit_stochastic``); the per-call
  input and label checks and the first call's weight initialisation are left out, as
  ``fit()``'s setup is for mlplab. Where that method is missing (another scikit-learn) the
  whole call is timed and the JSON says so (``sklearn_timed``).

Also inference on the 21,000 test images, the Python allocations (tracemalloc peak) of an
mlplab epoch on a 1,000-row set (the buffers are allocated once: what an epoch adds is nothing
per minibatch), and the peak resident memory of each implementation's process training on the
49,000 rows (``peak_rss_bytes``, data included) beside its resident memory once the data was
loaded (``rss_before_training_bytes``; the kernel's high-water mark is reset there, Linux only).
``--json`` prints a final JSON line keyed by architecture; each entry also records the run's
``threads``, ``rounds``, ``epochs`` and the ``versions`` each implementation ran with
(``None``: not importable).

Every implementation runs in a fresh process of its own (PyTorch's OpenMP threads keep
spinning after each parallel region and would slow whatever runs next in the same process),
and the processes are interleaved over ``--rounds`` rounds; the best round of each is reported,
all rounds are in the JSON.

    python benchmarks/bench_training.py [--epochs 3] [--rounds 2] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
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
    return list(tr.history.time_s), net


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
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(123)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, foreach=True)  # torch's fastest CPU update
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
    return times, model


def sklearn_classifier(sizes, shuffle: bool = True):
    """scikit-learn's MLP for one-epoch ``fit()`` calls that continue one training: warm start,
    and its shuffles drawn from one ``RandomState`` instance (an integer seed would restart the
    stream in every call)."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="logistic", solver="sgd",
                         learning_rate_init=0.1, momentum=0.0, nesterovs_momentum=False, alpha=0.0,
                         batch_size=100, max_iter=1, warm_start=True, tol=0.0, n_iter_no_change=10**6,
                         random_state=np.random.RandomState(123), shuffle=shuffle)


@contextlib.contextmanager
def timing_method(obj, name: str, times: list[float]):
    """Inside the block, every call of ``obj.name`` appends its seconds to ``times``: the method
    is wrapped by an instance attribute (which its class's callers find first), removed after."""
    inner = getattr(obj, name)

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - t0)

    setattr(obj, name, timed)
    try:
        yield times
    finally:
        obj.__dict__.pop(name, None)


def sklearn_epochs(clf, X, y, epochs) -> tuple[list[float], str]:
    """Train ``clf`` (:func:`sklearn_classifier`) ``epochs`` more epochs, one ``fit()`` each;
    returns each epoch's seconds and what was timed: ``"epoch loop"`` (scikit-learn's private
    ``_fit_stochastic``, without the per-call input and label checks) or ``"fit call"`` (that
    method is missing: the whole call)."""
    from sklearn.exceptions import ConvergenceWarning

    loop: list[float] = []
    calls = []
    inner = (timing_method(clf, "_fit_stochastic", loop) if hasattr(clf, "_fit_stochastic")
             else contextlib.nullcontext())
    with inner, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            t0 = time.perf_counter()
            clf.fit(X, y)
            calls.append(time.perf_counter() - t0)
    if len(loop) == len(calls):
        return loop, "epoch loop"
    return calls, "fit call"


def time_sklearn(sizes, X, y, epochs):
    clf = sklearn_classifier(sizes)
    times, timed = sklearn_epochs(clf, X, y, epochs)
    return times, timed, clf


#: how the floor's products are computed: (BLAS build, activation layout); see time_floor
FLOOR_WAYS = (("numpy", "rows"), ("numpy", "features"), ("scipy", "rows"))


def _floor_way(lib: str, layout: str) -> str:
    """The key of one way of computing the floor: ``numpy``, ``numpy_features``, ``scipy``."""
    return lib if layout == "rows" else f"{lib}_{layout}"


def time_floor(sizes, n, epochs, dtype=np.float32, lib="numpy", layout="rows", batch=100):
    """Seconds of the bare products of one epoch: through NumPy's ``matmul`` (the OpenBLAS
    build mlplab uses when ``mlplab.blas.BACKEND == "numpy"``) or through SciPy's ``gemm`` (a
    separate OpenBLAS build). ``layout="rows"`` stores a minibatch's activations and gradients
    one sample per row (C order, as mlplab, PyTorch and scikit-learn do); ``"features"`` stores
    them one feature per row (F order of the same arrays), which OpenBLAS runs several percent
    faster on 2 threads for the wide layers (the same on 1 thread): the products are the same,
    so the floor is the faster layout."""
    if lib == "numpy":
        mm = lambda a, b, out: np.matmul(a, b, out=out)  # noqa: E731
    else:
        from mlplab.blas import _gemm_scipy, _scipy_blas

        sgemm = _scipy_blas()[0][np.dtype(dtype)]
        mm = lambda a, b, out: _gemm_scipy(a, b, out, 1.0, 0.0, sgemm)  # noqa: E731
    rng = np.random.default_rng(0)
    Ws = [rng.normal(0, 0.1, (a, b)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    order = {"rows": "C", "features": "F"}[layout]
    acts = [np.asarray(rng.random((batch, s), dtype=dtype), order=order) for s in sizes]
    dWs = [np.empty_like(W) for W in Ws]
    dXs = [np.empty((batch, s), dtype, order=order) for s in sizes]
    batches = n // batch
    times = []
    for _ in range(epochs + 1):  # the first pass warms up BLAS threads and caches; min is the floor
        t0 = time.perf_counter()
        for _ in range(batches):
            for i, W in enumerate(Ws):
                mm(acts[i], W, acts[i + 1])
            g = acts[-1]
            for i in range(len(Ws) - 1, -1, -1):
                mm(acts[i].T, g, dWs[i])
                if i > 0:
                    mm(g, Ws[i].T, dXs[i])
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


IMPLS = ("floor", "mlplab", "torch", "sklearn")


def _memory_kib() -> dict[str, int]:
    """This process's resident set now and its high-water mark (Linux ``/proc``), in KiB."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1])
    except OSError:
        import resource

        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB, but bytes on macOS
        out["VmHWM"] = peak // 1024 if sys.platform == "darwin" else peak
    return out


def _reset_peak() -> bool:
    """Reset the high-water mark to the current resident set (Linux >= 4.0), so the peak read
    after training is training's own, not the data loading's."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def worker(impl: str, arch: str, epochs: int, threads: int, data_dir: str | None) -> dict:
    """Time one implementation on one architecture in this (fresh) process."""
    from mlplab.environment import blas_threads

    sizes = [int(s) for s in arch.split("-")]
    X, y, Xte, yte = load_split(data_dir)
    r: dict = {"version": None}
    try:  # the libraries' own code is loaded before the high-water mark is reset
        if impl == "torch":
            import torch

            r["version"] = torch.__version__
        elif impl == "sklearn":
            import sklearn
            from sklearn.neural_network import MLPClassifier  # noqa: F401

            r["version"] = sklearn.__version__
        elif impl == "mlplab":
            import mlplab
            import mlplab.training  # noqa: F401

            r["version"] = mlplab.__version__
        else:
            r["version"] = np.__version__
    except ImportError as exc:
        r["s_per_epoch"], r["unavailable"] = None, f"{type(exc).__name__}: {exc}"
        return r
    reset = _reset_peak()
    before = _memory_kib()

    def record_peak() -> None:  # after training on the 49,000 rows, before anything else
        after = _memory_kib()
        r["rss_before_training_bytes"] = before.get("VmRSS", 0) * 1024 if reset else None
        r["peak_rss_bytes"] = after["VmHWM"] * 1024

    with blas_threads(threads):
        if impl == "floor":
            # the floor is the fastest of the two BLAS builds and the two layouts on this machine
            for lib, layout in FLOOR_WAYS:
                r[f"{_floor_way(lib, layout)}_s_per_epoch"] = time_floor(sizes, len(y), epochs, lib=lib, layout=layout)
            r["s_per_epoch"] = min(r[f"{_floor_way(*way)}_s_per_epoch"] for way in FLOOR_WAYS)
        elif impl == "mlplab":
            r["epoch_s"], net = time_mlplab(sizes, X, y, epochs)
            r["s_per_epoch"] = statistics.median(r["epoch_s"])
            record_peak()
            r["test_accuracy"] = float(np.mean(net.predict(Xte) == yte))
            r["infer_s"] = time_inference(net.predict_proba, Xte)
            r["peak_bytes"] = mlplab_epoch_peak_memory(sizes, X, y)
        elif impl == "torch":
            r["epoch_s"], tmodel = time_torch(sizes, X, y, epochs, threads)
            r["s_per_epoch"] = statistics.median(r["epoch_s"])
            record_peak()
            import torch

            with torch.inference_mode():
                Xt = torch.from_numpy(Xte)
                r["infer_s"] = time_inference(tmodel, Xt)
        elif impl == "sklearn":
            r["epoch_s"], r["timed"], _ = time_sklearn(sizes, X, y, epochs)
            r["s_per_epoch"] = statistics.median(r["epoch_s"])
            record_peak()
    return r


def run_worker(impl: str, arch: str, args) -> dict:
    import subprocess

    cmd = [sys.executable, __file__, "--worker", impl, "--arch", arch, "--epochs", str(args.epochs),
           "--threads", str(args.threads)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3,
                    help="epochs per implementation, each timed (the median is reported)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="fresh-process runs of every implementation, interleaved; the best round is reported")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)),
                    help="BLAS (and PyTorch) threads of every implementation (default $BENCH_THREADS or all cores)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arch", action="append", help="e.g. 784-500-500-10 (repeatable)")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.epochs < 1 or args.rounds < 1 or args.threads < 1:
        ap.error("--epochs, --rounds and --threads must be >= 1")

    if args.worker:
        print(json.dumps(worker(args.worker, args.arch[0], args.epochs, args.threads, args.data_dir)))
        return 0

    from mlplab.environment import environment_info

    archs = args.arch or ["784-500-500-10", "784-50-10"]
    impls = [i for i in IMPLS if not (i == "sklearn" and args.no_sklearn)]
    runs: dict[tuple[str, str], list[dict]] = {}
    # every implementation in a fresh process (no thread pool of one library spinning while
    # another runs), interleaved over rounds so drift on a shared machine hits all alike
    for rnd in range(args.rounds):
        for arch in archs:
            order = impls[rnd % len(impls):] + impls[:rnd % len(impls)]
            for impl in order:
                runs.setdefault((arch, impl), []).append(run_worker(impl, arch, args))
    env = environment_info()
    unavailable = {impl: rs[0]["unavailable"] for (arch, impl), rs in runs.items() if rs[0].get("unavailable")}
    results: dict[str, dict] = {}
    for arch in archs:
        best = {}
        for impl in impls:
            rs = [r for r in runs[(arch, impl)] if r.get("s_per_epoch") is not None]
            best[impl] = min(rs, key=lambda r: r["s_per_epoch"]) if rs else {}
        ours, floor = best["mlplab"]["s_per_epoch"], best["floor"]["s_per_epoch"]
        torch_s = best["torch"].get("s_per_epoch")
        sk = best.get("sklearn", {}).get("s_per_epoch")
        r = {"threads": args.threads, "rounds": args.rounds, "epochs": args.epochs,
             "versions": {"python": env["versions"]["python"], "numpy": env["versions"]["numpy"],
                          "scipy": env["versions"]["scipy"],
                          **{impl: runs[(arch, impl)][0].get("version") for impl in impls if impl != "floor"}},
             "unavailable": dict(unavailable),
             "epoch_s_best_round": {impl: best[impl].get("epoch_s") for impl in impls if impl != "floor"},
             "sklearn_timed": best.get("sklearn", {}).get("timed"),
             "mlplab_s_per_epoch": ours, "torch_s_per_epoch": torch_s, "sklearn_s_per_epoch": sk,
             "floor_s_per_epoch": floor, "mlplab_over_floor": ours / floor,
             "floor_by_blas_s_per_epoch": {way: min(w[f"{way}_s_per_epoch"] for w in runs[(arch, "floor")])
                                           for way in (_floor_way(*w) for w in FLOOR_WAYS)},
             "torch_over_mlplab": None if torch_s is None else torch_s / ours,
             "sklearn_over_mlplab": None if sk is None else sk / ours,
             "mlplab_test_accuracy": best["mlplab"]["test_accuracy"],
             "mlplab_infer_s": min(r["infer_s"] for r in runs[(arch, "mlplab")]),
             "mlplab_epoch_peak_tracemalloc_bytes_1000_rows": best["mlplab"]["peak_bytes"],
             "all_rounds_s_per_epoch": {impl: [r.get("s_per_epoch") for r in runs[(arch, impl)]] for impl in impls}}
        # memory of one full training run per implementation (its first round; fresh process)
        r["peak_rss_bytes"] = {impl: runs[(arch, impl)][0].get("peak_rss_bytes") for impl in impls if impl != "floor"}
        r["rss_before_training_bytes"] = {impl: runs[(arch, impl)][0].get("rss_before_training_bytes")
                                          for impl in impls if impl != "floor"}
        t_inf = [r["infer_s"] for r in runs[(arch, "torch")] if r.get("infer_s") is not None]
        if t_inf:
            r["torch_infer_s"] = min(t_inf)
        results[arch] = r
    vers = next(iter(results.values()))["versions"]
    print(f"threads={args.threads}  rounds={args.rounds}  epochs={args.epochs} (median epoch)  "
          f"numpy {vers['numpy']}  sklearn {vers.get('sklearn') or '-'}  torch {vers.get('torch') or '-'}  "
          f"BLAS {[b.get('internal_api') for b in env['blas']]}  mlplab's products through {env['mlplab_blas']}'s BLAS")
    names = {"torch": "PyTorch", "sklearn": "scikit-learn"}
    for impl, msg in unavailable.items():
        print(f"{names.get(impl, impl)} not importable ({msg}): its columns are empty")
    for r in results.values():
        r["mlplab_blas"] = env["mlplab_blas"]
    head = f"{'architecture':<16}{'floor':>9}{'mlplab':>9}{'torch':>9}{'sklearn':>9}{'ours/floor':>12}{'torch/ours':>12}{'sk/ours':>9}"
    print(head)
    fmt = lambda v, w=9, p=3: f"{'-':>{w}}" if v is None else f"{v:>{w}.{p}f}"
    for arch, r in results.items():
        print(f"{arch:<16}{fmt(r['floor_s_per_epoch'])}{fmt(r['mlplab_s_per_epoch'])}{fmt(r['torch_s_per_epoch'])}"
              f"{fmt(r['sklearn_s_per_epoch'])}{fmt(r['mlplab_over_floor'], 12, 2)}{fmt(r['torch_over_mlplab'], 12, 2)}"
              f"{fmt(r['sklearn_over_mlplab'], 9, 2)}")
    for arch, r in results.items():
        torch_inf = r.get("torch_infer_s")
        print(f"{arch}: inference on 21000 rows mlplab {r['mlplab_infer_s']:.4f} s, torch "
              f"{'-' if torch_inf is None else f'{torch_inf:.4f} s'}; epoch peak traced memory "
              f"{r['mlplab_epoch_peak_tracemalloc_bytes_1000_rows'] / 1024:.0f} KiB (1000-row set)")
        mib = lambda b: "-" if b is None else f"{b / 2**20:.0f}"
        print(f"{arch}: peak resident memory of a training run on the 49,000 rows (MiB, the process "
              "with its data; in brackets what training added to it): " + ", ".join(
                  f"{impl} {mib(r['peak_rss_bytes'][impl])} "
                  f"[{mib(None if r['rss_before_training_bytes'][impl] is None else r['peak_rss_bytes'][impl] - r['rss_before_training_bytes'][impl])}]"
                  for impl in r["peak_rss_bytes"]))
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
