import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def digits():
    """scikit-learn's 8x8 digits scaled to [0, 1] (always offline)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float64), d.target.astype(np.int64)


@pytest.fixture
def mnist_dir():
    """The MNIST folder from MLPLAB_DATA_DIR, or skip."""
    root = os.environ.get("MLPLAB_DATA_DIR")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("MLPLAB_DATA_DIR with an mnist/ folder is not set (CI sets it to ../shared/data)")
    return Path(root)


# -- fuzz input counting (read by benchmarks/reliability_report.py) ---------------------------
def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("MLPLAB_FUZZ_COUNTS")
    if target:
        import json

        from fuzzcount import COUNTS

        Path(target).write_text(json.dumps(COUNTS, sort_keys=True))
