"""Time of one optimizer step: mlplab's optimizers against torch.optim, same parameters, same threads.

    python benchmarks/bench_optimizers.py [--threads 2] [--steps 200] [--rounds 3] [--only ARCH ...] [--json]

For each architecture (the weight and bias shapes of its dense layers, float32) and each
optimizer (SGD with momentum 0.9, RMSprop, Adam, at their default hyperparameters otherwise),
times ``steps`` consecutive steps and reports microseconds per step, the best of ``rounds``.
Every step first copies fresh gradients into the gradient arrays (mlplab's optimizers use the
gradients as scratch space; PyTorch's are copied too, so both pay the same copy), so the figures
are the update plus one copy of the gradients; the copy alone is reported beside them.

PyTorch runs with its default implementation (``foreach`` / for-loop as torch picks on the CPU)
and, where this torch supports it, ``fused=True``; a column is ``None`` when torch is missing or
refuses the option. The last line with ``--json`` is a JSON object keyed by architecture.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

ARCHS = {"64-256-10": [64, 256, 10], "784-256-10": [784, 256, 10], "784-500-500-10": [784, 500, 500, 10],
         "784-1024-1024-10": [784, 1024, 1024, 10]}
OPTIMIZERS = {"sgd-momentum": ("sgd", {"momentum": 0.9}, 0.01), "rmsprop": ("rmsprop", {}, 1e-3),
              "adam": ("adam", {}, 1e-3)}


def shapes(sizes: list[int]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out += [(fan_in, fan_out), (fan_out,)]
    return out


def _best(step, steps: int, rounds: int) -> float:
    for _ in range(10):  # warm up
        step()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best * 1e6


def time_mlplab(kind: str, shp, steps: int, rounds: int) -> float:
    from mlplab.optimizers import get_optimizer

    name, hp, lr = OPTIMIZERS[kind]
    rng = np.random.default_rng(0)
    params = [rng.normal(scale=0.05, size=s).astype(np.float32) for s in shp]
    fresh = [rng.normal(scale=1e-3, size=s).astype(np.float32) for s in shp]
    grads = [np.empty_like(p) for p in params]
    opt = get_optimizer({"name": name, **hp}, params, lr=lr)

    def step():
        for g, f in zip(grads, fresh):
            np.copyto(g, f)
        opt.step(grads)

    return _best(step, steps, rounds)


def time_copy(shp, steps: int, rounds: int) -> float:
    fresh = [np.ones(s, dtype=np.float32) for s in shp]
    grads = [np.empty_like(f) for f in fresh]

    def step():
        for g, f in zip(grads, fresh):
            np.copyto(g, f)

    return _best(step, steps, rounds)


def time_torch(kind: str, shp, steps: int, rounds: int, fused: bool) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    name, hp, lr = OPTIMIZERS[kind]
    rng = np.random.default_rng(0)
    params = [torch.nn.Parameter(torch.from_numpy(rng.normal(scale=0.05, size=s).astype(np.float32))) for s in shp]
    fresh = [torch.from_numpy(rng.normal(scale=1e-3, size=s).astype(np.float32)) for s in shp]
    for p, f in zip(params, fresh):
        p.grad = f.clone()
    cls = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[name]
    kwargs = {"lr": lr, **hp}
    if fused:
        kwargs["fused"] = True
    try:
        opt = cls(params, **kwargs)
        opt.step()
    except (RuntimeError, TypeError, ValueError):  # this torch has no fused CPU version of it
        return None

    def step():
        with torch.no_grad():
            for p, f in zip(params, fresh):
                p.grad.copy_(f)
        opt.step()

    return _best(step, steps, rounds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=list(ARCHS), default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from mlplab.environment import blas_threads

    try:
        import torch

        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    results: dict = {}
    print(f"threads {args.threads}, {args.steps} steps x {args.rounds} rounds; microseconds per step "
          f"(update + one copy of the gradients), torch {torch_version}")
    print(f"{'architecture':18} {'optimizer':13} {'mlplab':>9} {'torch':>9} {'fused':>9} {'torch/mlplab':>13} {'copy':>7}")
    with blas_threads(args.threads):
        for arch in args.only or list(ARCHS):
            shp = shapes(ARCHS[arch])
            copy_us = time_copy(shp, args.steps, args.rounds)
            results[arch] = {"n_parameters": int(sum(int(np.prod(s)) for s in shp)), "copy_us": copy_us}
            for kind in OPTIMIZERS:
                ours = time_mlplab(kind, shp, args.steps, args.rounds)
                theirs = time_torch(kind, shp, args.steps, args.rounds, fused=False)
                fused = time_torch(kind, shp, args.steps, args.rounds, fused=True)
                ratio = None if theirs is None else theirs / ours
                results[arch][kind] = {"mlplab_us": ours, "torch_us": theirs, "torch_fused_us": fused,
                                       "torch_over_mlplab": ratio}
                fmt = lambda v: "     None" if v is None else f"{v:9.1f}"  # noqa: E731
                print(f"{arch:18} {kind:13} {fmt(ours)} {fmt(theirs)} {fmt(fused)} "
                      f"{'' if ratio is None else f'{ratio:.2f}':>13} {copy_us:7.1f}", flush=True)
    if args.json:
        print(json.dumps({"threads": args.threads, "steps": args.steps, "rounds": args.rounds,
                          "torch": torch_version, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
