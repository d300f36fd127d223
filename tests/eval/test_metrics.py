"""Metrics equal scikit-learn's on random inputs and behave on edge cases."""

from __future__ import annotations

import json
import math
import warnings
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mlplab.errors import MlplabError
from mlplab.metrics import (
    MetricsInputError,
    binary_metrics,
    chunked_ovr_auc,
    classification_metrics,
)


def _random_case(seed: int, n: int, k: int, all_present: bool = True, dtype=np.float64):
    rng = np.random.default_rng(seed)
    if all_present:
        y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
        y = rng.permutation(y)
    else:
        y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) * rng.uniform(0.1, 3)
    logits[np.arange(n), y] += rng.uniform(0, 2)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    return y.astype(np.int64), p


def _assert_close(a, b, tol=1e-9):
    assert a is not None and b is not None
    assert math.isclose(a, b, rel_tol=tol, abs_tol=tol), (a, b)


def _sklearn_reference(y, p, k):
    p64 = p.astype(np.float64)
    p64 = p64 / p64.sum(axis=1, keepdims=True)
    labels = list(range(k))
    ref = {
        "accuracy": skm.accuracy_score(y, p.argmax(1)),
        "balanced_accuracy": skm.balanced_accuracy_score(y, p.argmax(1)),
        "log_loss": skm.log_loss(y, np.clip(p64, np.finfo(np.float64).eps, 1), labels=labels),
    }
    if k == 2:
        auc = skm.roc_auc_score(y, p64[:, 1])
        ref.update(roc_auc_ovr_macro=auc, roc_auc_ovo_macro=auc, roc_auc_ovr_weighted=auc)
    else:
        for avg in ("macro", "micro", "weighted"):
            ref[f"roc_auc_ovr_{avg}"] = skm.roc_auc_score(y, p64, multi_class="ovr", average=avg, labels=labels)
        ref["roc_auc_ovo_macro"] = skm.roc_auc_score(y, p64, multi_class="ovo", average="macro", labels=labels)
    return ref


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 10), extra=st.integers(0, 80),
       f32=st.booleans())
def test_matches_sklearn_on_random_inputs(seed, k, extra, f32):
    y, p = _random_case(seed, k + extra + 2, k, dtype=np.float32 if f32 else np.float64)
    m = classification_metrics(y, p)
    # accuracy is exactly sklearn's accuracy_score of the argmax
    assert m["accuracy"] == skm.accuracy_score(y, p.argmax(axis=1))
    for key, value in _sklearn_reference(y, p, k).items():
        _assert_close(m[key], float(value), tol=1e-7 if key == "log_loss" else 1e-12)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, p.argmax(1), labels=list(range(k))).tolist()
    ref = skm.classification_report(y, p.argmax(1), labels=list(range(k)), target_names=[str(i) for i in range(k)],
                                    output_dict=True, zero_division=np.nan)
    for cls in [str(i) for i in range(k)] + ["macro avg", "weighted avg"]:
        for field in ("precision", "recall", "f1-score"):
            want = float(ref[cls][field])
            got = m["classification_report"][cls][field]
            assert (got is None) if np.isnan(want) else math.isclose(got, want, rel_tol=1e-12)
        assert m["classification_report"][cls]["support"] == int(ref[cls]["support"])
    assert m["majority_baseline"] == np.bincount(y, minlength=k).max() / len(y)
    assert m["n_samples"] == len(y) and m["missing_classes"] == []
    assert all(n.startswith("undefined (0/0)") for n in m["notes"])  # e.g. a class never predicted
    json.dumps(m, allow_nan=False)


def test_types_are_plain_python():
    y, p = _random_case(1, 100, 10)
    m = classification_metrics(y, p)

    def walk(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
        else:
            assert obj is None or type(obj) in (int, float, str, bool), type(obj)

    walk(m)
    rows = m["confusion_matrix_normalized"]
    assert all(math.isclose(sum(r), 1.0) for r in rows)


def test_class_names_are_used():
    y, p = _random_case(2, 60, 3)
    m = classification_metrics(y, p, classes=["cat", "dog", "owl"])
    assert m["classes"] == ["cat", "dog", "owl"]
    assert set(m["roc_auc_per_class_ovr"]) == {"cat", "dog", "owl"}
    assert "owl" in m["classification_report"]
    with pytest.raises(MetricsInputError):
        classification_metrics(y, p, classes=["a", "b"])


def test_missing_class_is_reported_not_nan():
    y, p = _random_case(3, 300, 10)
    y[y == 3] = 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UndefinedMetricWarning leaks out
        m = classification_metrics(y, p)
    assert m["missing_classes"] == ["3"]
    assert any("absent" in n for n in m["notes"])
    present = [c for c in range(10) if c != 3]
    onehot = np.eye(10)[y]
    _assert_close(m["roc_auc_ovr_macro"], skm.roc_auc_score(onehot[:, present], p[:, present], average="macro"))
    _assert_close(m["roc_auc_ovr_weighted"],
                  skm.roc_auc_score(onehot[:, present], p[:, present], average="weighted"))
    # micro: every (row, class) decision, the absent class's all negative, as scikit-learn pools them
    _assert_close(m["roc_auc_ovr_micro"], skm.roc_auc_score(onehot, p, average="micro"))
    # OvO over the present pairs, written out (Hand & Till)
    pairs = []
    for a, b in combinations(present, 2):
        mask = (y == a) | (y == b)
        pairs.append((skm.roc_auc_score(y[mask] == a, p[mask, a]) + skm.roc_auc_score(y[mask] == b, p[mask, b])) / 2)
    _assert_close(m["roc_auc_ovo_macro"], float(np.mean(pairs)))
    assert m["roc_auc_per_class_ovr"]["3"] is None
    assert m["confusion_matrix_normalized"][3] is None
    assert m["classification_report"]["3"]["recall"] is None
    assert m["classification_report"]["3"]["support"] == 0
    json.dumps(m, allow_nan=False)


def test_single_class_gives_none_aucs():
    y = np.zeros(20, dtype=np.int64)
    p = np.full((20, 3), 1 / 3)
    p[:, 0] += 0.1
    p /= p.sum(1, keepdims=True)
    m = classification_metrics(y, p)
    for key in ("roc_auc_ovr_macro", "roc_auc_ovo_macro", "roc_auc_ovr_micro", "roc_auc_ovr_weighted"):
        assert m[key] is None
    assert m["accuracy"] == 1.0 and m["majority_baseline"] == 1.0
    assert any("single class" in n for n in m["notes"])
    json.dumps(m, allow_nan=False)


def test_perfectly_separable():
    y = np.repeat(np.arange(10), 10)
    p = np.eye(10)[y]  # exact 0/1 probabilities: log loss must stay finite (clipped)
    m = classification_metrics(y, p)
    assert m["accuracy"] == 1.0 and m["balanced_accuracy"] == 1.0
    for key in ("roc_auc_ovr_macro", "roc_auc_ovo_macro", "roc_auc_ovr_micro", "roc_auc_ovr_weighted"):
        assert m[key] == 1.0
    assert 0 <= m["log_loss"] < 1e-10
    assert m["confusion_matrix"] == (np.eye(10, dtype=int) * 10).tolist()


def test_two_classes():
    y = np.array([0, 0, 1, 1, 1, 0])
    p1 = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])
    p = np.column_stack([1 - p1, p1])
    m = classification_metrics(y, p)
    auc = skm.roc_auc_score(y, p1)
    assert m["roc_auc_ovr_macro"] == m["roc_auc_ovo_macro"] == m["roc_auc_ovr_weighted"] == pytest.approx(auc)
    assert m["accuracy"] == skm.accuracy_score(y, p.argmax(1))
    assert m["majority_baseline"] == 0.5


def test_k10_large():
    y, p = _random_case(4, 5000, 10, dtype=np.float32)
    m = classification_metrics(y, p)
    ref = _sklearn_reference(y, p, 10)
    for key in ("roc_auc_ovr_macro", "roc_auc_ovo_macro", "roc_auc_ovr_micro", "roc_auc_ovr_weighted"):
        _assert_close(m[key], float(ref[key]))
    assert sum(map(sum, m["confusion_matrix"])) == 5000


@pytest.mark.parametrize(
    "y, p, fragment",
    [
        (np.array([0, 1]), np.array([[0.5, 0.6], [0.5, 0.5]]), "sum to 1"),
        (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), "outside"),
        (np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), "rows"),
        (np.array([0.5, 1.0]), np.array([[0.5, 0.5], [0.5, 0.5]]), "integer"),
        (np.array([0, 1]), np.array([[np.nan, 0.5], [0.5, 0.5]]), "NaN"),
        (np.array([0, 1]), np.array([0.5, 0.5]), "2-D"),
    ],
)
def test_bad_inputs_raise_mlplab_errors(y, p, fragment):
    with pytest.raises(MlplabError, match=fragment):
        classification_metrics(y, p)


# ----------------------------------------------------------------------------- chunked AUC


def _report1_loop(y, p, chunk=100):
    """Report 1's compute_macro_auc, re-implemented: skip chunks where sklearn cannot score."""
    k = p.shape[1]
    aucs, skipped = [], 0
    for i in range(0, len(y), chunk):
        onehot = np.eye(k)[y[i : i + chunk]]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                auc = skm.roc_auc_score(onehot, p[i : i + chunk], average="macro", multi_class="ovo")
        except ValueError:
            auc = float("nan")
        if np.isnan(auc):
            skipped += 1
        else:
            aucs.append(auc)
    return (float(np.mean(aucs)) if aucs else None), skipped


def _chunked_case(seed, n_chunks, k=10, chunk=100):
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.permutation(np.arange(chunk) % k) for _ in range(n_chunks)])
    _, p = _random_case(seed, len(y), k)
    logits = rng.normal(size=(len(y), k))
    logits[np.arange(len(y)), y] += 1.5
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    return y, p


def test_chunked_auc_equals_report_loop():
    y, p = _chunked_case(5, 7)
    got = chunked_ovr_auc(y, p)
    want, skipped = _report1_loop(y, p)
    assert got["n_chunks"] == 7 and got["n_skipped"] == skipped == 0 and got["n_used"] == 7
    assert got["value"] == pytest.approx(want, abs=1e-15)
    # it is a different number from the global macro OvR AUC
    assert got["value"] != pytest.approx(classification_metrics(y, p)["roc_auc_ovr_macro"], abs=1e-9)


def test_chunked_auc_skips_and_counts_incomplete_chunks():
    y, p = _chunked_case(6, 4)
    y[100:200][y[100:200] == 7] = 8  # chunk 2 now lacks class 7
    got = chunked_ovr_auc(y, p)
    want, skipped = _report1_loop(y, p)
    assert got["n_skipped"] == skipped == 1 and got["n_used"] == 3
    assert got["value"] == pytest.approx(want, abs=1e-15)


def test_chunked_auc_partial_last_chunk_and_all_skipped():
    y, p = _chunked_case(7, 3)
    got = chunked_ovr_auc(y[:250], p[:250])
    assert got["n_chunks"] == 3  # 100 + 100 + 50 rows
    assert got["value"] == pytest.approx(_report1_loop(y[:250], p[:250])[0], abs=1e-15)
    none = chunked_ovr_auc(y[:250], p[:250], chunk=5)  # a 5-row chunk never holds 10 classes
    assert none["value"] is None and none["n_skipped"] == none["n_chunks"] == 50
    with pytest.raises(MetricsInputError):
        chunked_ovr_auc(y, p, chunk=0)


# ----------------------------------------------------------------------------- binary


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 200), t=st.floats(0.05, 0.95))
def test_binary_metrics_match_sklearn(seed, n, t):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1)
    m = binary_metrics(y, s, threshold=t)
    pred = (s >= t).astype(int)
    assert m["accuracy"] == skm.accuracy_score(y, pred)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert m["baseline_accuracy"] == pytest.approx(np.mean(y == 0))
    assert m["beats_baseline"] == (m["accuracy"] > m["baseline_accuracy"])
    if pred.sum() > 0:
        assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    else:
        assert m["precision"] is None
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    # Youden's threshold is the best balanced accuracy over every candidate threshold
    best = max(skm.balanced_accuracy_score(y, (s >= c).astype(int)) for c in np.unique(s))
    assert m["youden_balanced_accuracy"] == pytest.approx(best)
    json.dumps(m, allow_nan=False)


def test_binary_imbalanced_report2_case():
    # 10% positives: predicting all negative gives 0.9, which a poor model at t=0.75 does not beat.
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.1).astype(int)
    s = np.clip(0.6 + 0.2 * y + rng.normal(0, 0.15, 1000), 0, 1)
    m = binary_metrics(y, s, threshold=0.75)
    assert m["baseline_accuracy"] == pytest.approx(1 - y.mean())
    assert not m["beats_baseline"]
    assert m["roc_auc"] > 0.8 and m["youden_balanced_accuracy"] > m["balanced_accuracy"]


def test_binary_single_class_and_errors():
    m = binary_metrics(np.zeros(5, int), np.linspace(0, 1, 5))
    assert m["roc_auc"] is None and m["youden_threshold"] is None and m["recall"] is None
    assert m["notes"]
    with pytest.raises(MetricsInputError):
        binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(MetricsInputError):
        binary_metrics(np.array([0, 1]), np.array([0.1]))


@pytest.mark.parametrize("decimals", [1, 2])
def test_chunked_auc_with_tied_scores_equals_report_loop(decimals):
    # rounded scores tie often: the rank formula's average ranks must give scikit-learn's areas
    y, p = _chunked_case(8, 5)
    p = np.round(p, decimals)
    got = chunked_ovr_auc(y, p)
    want, skipped = _report1_loop(y, p)
    assert got["n_skipped"] == skipped
    assert got["value"] == pytest.approx(want, abs=1e-15)


def test_chunked_auc_binary_and_odd_chunk():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 230)
    p1 = rng.random(230)
    p = np.column_stack([1 - p1, p1])
    for chunk in (7, 50, 230):
        got = chunked_ovr_auc(y, p, chunk=chunk)
        want, skipped = _report1_loop(y, p, chunk=chunk)
        assert got["n_skipped"] == skipped
        assert got["value"] == pytest.approx(want, abs=1e-15)
