"""Counts of generated fuzz inputs per parser, written out by tests/conftest.py at session end
when MLPLAB_FUZZ_COUNTS names a file (benchmarks/reliability_report.py reads it)."""

COUNTS: dict[str, int] = {}


def count_fuzz_input(parser: str) -> None:
    COUNTS[parser] = COUNTS.get(parser, 0) + 1
