"""measure_inference times only predict_fn, bounded, with robust statistics."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from mlplab.errors import ConfigError
from mlplab.timing import batch_key, measure_inference


class Counter:
    def __init__(self, sleep: float = 0.0):
        self.calls = 0
        self.rows = 0
        self.sleep = sleep

    def __call__(self, xb):
        self.calls += 1
        self.rows += xb.shape[0]
        if self.sleep:
            time.sleep(self.sleep)
        return xb.sum(axis=1)


def test_keys_rows_and_calls():
    X = np.ones((2100, 4))
    fn = Counter()
    res = measure_inference(fn, X, repeats=3, warmup=1, max_calls=100)
    assert list(res) == ["1", "100", "all"]
    one, hundred, whole = res["1"], res["100"], res["all"]
    assert (one["rows"], one["calls"], one["batch_size"]) == (100, 100, 1)  # bounded by max_calls
    assert (hundred["rows"], hundred["calls"]) == (2100, 21)
    assert (whole["rows"], whole["calls"], whole["batch_size"]) == (2100, 1, None)
    # (warmup + repeats) passes per batch size
    assert fn.calls == 4 * (100 + 21 + 1)
    for entry in res.values():
        assert entry["repeats"] == 3
        assert 0 <= entry["min_s"] <= entry["median_s"] <= entry["max_s"]
        assert entry["iqr_s"] >= 0
        assert entry["seconds_per_sample"] == pytest.approx(entry["median_s"] / entry["rows"])
    json.dumps(res, allow_nan=False)


def test_default_bounds_batch_one_to_1000_rows():
    res = measure_inference(lambda xb: xb, np.zeros((3000, 2)), batch_sizes=(1,), repeats=1, warmup=0)
    assert res["1"]["rows"] == 1000


def test_time_budget_stops_early():
    fn = Counter(sleep=0.02)
    res = measure_inference(fn, np.zeros((10, 2)), batch_sizes=(None,), repeats=50, warmup=0, max_seconds=0.05)
    assert 1 <= res["all"]["repeats"] < 50
    assert res["all"]["median_s"] >= 0.015


def test_batch_larger_than_set():
    res = measure_inference(lambda xb: xb, np.zeros((7, 2)), batch_sizes=(100,), repeats=1)
    assert res["100"]["rows"] == 7 and res["100"]["calls"] == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"repeats": 0}, {"warmup": -1}, {"batch_sizes": (0,)}, {"batch_sizes": ()}, {"max_seconds": 0},
     {"max_calls": 0}, {"batch_sizes": (1.5,)}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        measure_inference(lambda xb: xb, np.zeros((5, 2)), **kwargs)


def test_empty_X_and_batch_key():
    with pytest.raises(ConfigError):
        measure_inference(lambda xb: xb, np.zeros((0, 2)))
    assert batch_key(None) == "all" and batch_key(100) == "100"
