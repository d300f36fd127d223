"""Run the reliability tests and write their tally into README.md (between the
``<!-- reliability:begin -->`` / ``<!-- reliability:end -->`` markers).

    python benchmarks/reliability_report.py [--no-write]

Groups: bad inputs (every CLI command; data, model and config files), fuzzing (inputs generated
per parser, and how many escaped as anything but the project's own error), interruptions
(SIGINT/SIGTERM/SIGKILL of real processes, exact resume) and determinism checks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GROUPS = {
    "bad input": ["tests/reliability/test_bad_input.py", "tests/core/test_serialization.py::test_bad_model_files",
                  "tests/data/test_idx.py", "tests/data/test_cli_data.py", "tests/core/test_cli_train.py",
                  "tests/experiments/test_spec.py", "tests/reliability/test_qa24_fixes.py",
                  "tests/core/test_config_cli_qa25.py", "tests/core/test_model_files_qa25.py",
                  "tests/data/test_data_qa25.py", "tests/core/test_resume_qa27.py",
                  "tests/experiments/test_cells_resume_qa27.py", "tests/experiments/test_cache_result_qa28.py"],
    "fuzzing": ["tests/data/test_idx.py::test_fuzz_only_data_errors_escape",
                "tests/core/test_serialization.py::test_fuzzed_model_files_raise_only_model_file_errors",
                "tests/reliability/test_fuzz_config.py"],
    "interruption and kill": ["tests/reliability/test_interruptions.py",
                              "tests/core/test_training.py::test_interrupt_and_resume_is_bit_identical",
                              "tests/core/test_serialization.py::test_resume_from_file_is_exact",
                              "tests/experiments/test_checkpoint.py"],
    "determinism": ["tests/core/test_training.py::test_same_seed_identical_different_seed_different",
                    "tests/core/test_cli_train.py::test_train_is_reproducible",
                    "tests/eval/test_report.py::test_report_is_byte_identical_twice",
                    "tests/data/test_splits.py",
                    "tests/experiments/test_sweep.py::test_serial_and_parallel_bit_identical",
                    "tests/experiments/test_sweep.py::test_cache_and_resume",
                    "tests/experiments/test_protocols.py::test_shuffle_stream_replays_global_rng",
                    "tests/core/test_stacked.py",
                    "tests/experiments/test_sweep.py::test_cells_differing_in_lr_train_as_one_stack_equal_to_alone"],
}


def run_group(targets: list[str], env: dict) -> tuple[int, int, int]:
    targets = [t for t in targets if (ROOT / t.split("::")[0]).exists()]
    if not targets:
        return 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "r.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *targets],
                       cwd=ROOT, env=env, capture_output=True, text=True)
        root = ET.parse(xml).getroot()
        cases = root.iter("testcase")
        total = failed = skipped = 0
        for case in cases:
            total += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None:
                skipped += 1
        return total, failed, skipped


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        counts_file = Path(tmp) / "fuzz.json"
        env["MLPLAB_FUZZ_COUNTS"] = str(counts_file)
        results = {}
        for name, targets in GROUPS.items():
            results[name] = run_group(targets, env)
            if name == "fuzzing" and counts_file.exists():
                results["fuzz_counts"] = json.loads(counts_file.read_text())
    lines = ["| check | tests run | passed | failed | skipped |", "|---|---|---|---|---|"]
    for name in GROUPS:
        total, failed, skipped = results[name]
        lines.append(f"| {name} | {total} | {total - failed - skipped} | {failed} | {skipped} |")
    fuzz = results.get("fuzz_counts", {})
    fuzz_failed = results["fuzzing"][1]
    lines += ["", "| parser | fuzz inputs generated | crashes (anything but the project's own error) |", "|---|---|---|"]
    for parser, n in sorted(fuzz.items()):
        lines.append(f"| {parser} | {n:,} | {'0' if not fuzz_failed else 'see failed tests'} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        readme = ROOT / "README.md"
        text = readme.read_text()
        begin, end = "<!-- reliability:begin -->", "<!-- reliability:end -->"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            note = "Generated by `python benchmarks/reliability_report.py`."
            readme.write_text(f"{head}{begin}\n{note}\n\n{table}\n{end}{tail}")
    return 0 if all(results[g][1] == 0 for g in GROUPS) else 1


if __name__ == "__main__":
    sys.exit(main())
