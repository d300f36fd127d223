"""Wall time of the built-in experiments, each run as a user runs it (a fresh ``mlplab`` process).

    python benchmarks/bench_experiments.py [--quick] [--jobs 2] [--threads 1] [--protocol P]
                                           [--only NAME ...] [--out-root DIR] [--json]

For every experiment: ``mlplab experiment run NAME [--quick] --jobs J --threads T --out DIR``
into a new folder (nothing cached), timed from outside; prints the wall time, the number of
cells and the time the cells themselves took (their sum over workers), then one line per cell
(its wall time, and its test accuracy and training time where the cell reports them), and with
``--json`` a final JSON line. Before and after the runs it times the bare matrix products of one
784-500-500-10 SGD epoch (49,000 rows, batch 100) on one BLAS thread, in a fresh process:
this machine's speed at the time, since the same code's wall time here has varied by about
1.5x from one day to another. Needs MNIST (``MLPLAB_DATA_DIR`` or the cache) and, for the PyTorch cells,
torch==2.13.0. The full runs take long (``relu-softmax-full-batch``: most of an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ["two-hidden-layers", "ovr-logistic", "relu-softmax-full-batch", "mnist-best"]


def machine_reference() -> float | None:
    """Seconds of the 1-thread matmul floor of one 784-500-500-10 epoch, in a fresh process."""
    here = Path(__file__).resolve().parent
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from mlplab.environment import blas_threads\n"
            "from bench_training import time_floor\n"
            "with blas_threads(1):\n"
            "    print(time_floor([784, 500, 500, 10], 49000, 2, lib='scipy'))\n") % str(here)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        return float(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return None


#: what each cell's line shows from its result, when the cell has it
CELL_FIGURES = ("test_accuracy", "training_time_s")


def _ref(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f} s"


def run_one(name: str, out: Path, args) -> dict:
    cmd = [sys.executable, "-c", "import sys; from mlplab.cli import main; sys.exit(main(sys.argv[1:]))",
           "experiment", "run", name, "--jobs", str(args.jobs), "--threads", str(args.threads), "--out", str(out)]
    if args.quick:
        cmd.append("--quick")
    if args.protocol:
        cmd += ["--protocol", args.protocol]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall_s": wall}
    summary = json.loads((out / "summary.json").read_text())
    per_cell = [{"name": c["name"], "wall_s": c["wall_s"],
                 **{k: c["result"][k] for k in CELL_FIGURES if isinstance(c.get("result"), dict) and k in c["result"]}}
                for c in summary["cells"]]
    return {"wall_s": wall, "cells": len(summary["cells"]), "per_cell": per_cell,
            "cells_wall_s": sum(c["wall_s"] for c in summary["cells"]),
            "slowest_cell": max(summary["cells"], key=lambda c: c["wall_s"])["name"],
            "slowest_cell_s": max(c["wall_s"] for c in summary["cells"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--protocol", default=None)
    ap.add_argument("--only", nargs="+", choices=NAMES)
    ap.add_argument("--out-root", default=None, help="keep the experiment folders here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = Path(args.out_root) if args.out_root else Path(tempfile.mkdtemp(prefix="mlplab-bench-"))
    results = {}
    ref_before = machine_reference()
    print(f"machine reference (1-thread matmul floor of one 784-500-500-10 epoch): {_ref(ref_before)}")
    for name in args.only or NAMES:
        out = root / name
        if out.exists():
            shutil.rmtree(out)
        results[name] = run_one(name, out, args)
        r = results[name]
        if "error" in r:
            print(f"{name:26} FAILED after {r['wall_s']:.0f} s: {r['error']}")
        else:
            print(f"{name:26} {r['wall_s']:8.1f} s wall  {r['cells']:3d} cells  {r['cells_wall_s']:8.1f} s in cells  "
                  f"slowest {r['slowest_cell']} {r['slowest_cell_s']:.1f} s")
            for c in r["per_cell"]:
                extra = "".join(f"  {k} {c[k]:.4f}" if k == "test_accuracy" else f"  {k} {c[k]:.1f}"
                                for k in CELL_FIGURES if isinstance(c.get(k), (int, float)))
                print(f"    {c['name']:40} {c['wall_s']:8.1f} s{extra}")
    ref_after = machine_reference()
    print(f"machine reference after the runs: {_ref(ref_after)}")
    if not args.out_root:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"quick": args.quick, "jobs": args.jobs, "threads": args.threads,
                          "protocol": args.protocol, "results": results,
                          "machine_reference_s": {"before": ref_before, "after": ref_after}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
