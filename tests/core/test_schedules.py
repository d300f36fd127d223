"""Learning-rate schedules against their references (PyTorch's schedulers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlplab.schedules import get_schedule

NAN, INF = float("nan"), float("inf")

# (label, losses, factor, patience, min_delta, min_lr, base_lr)
PLATEAU_CASES = [
    ("ties", [1.0] * 10, 0.5, 2, 1e-4, 0.0, 1.0),
    ("near min_delta", [1, 0.99995, 0.9999, 0.9998, 0.9997, 0.9997, 0.9997, 0.9997], 0.5, 2, 1e-4, 0.0, 1.0),
    ("nan", [1, 2, NAN, 0.5, NAN, NAN, NAN], 0.5, 2, 1e-4, 0.0, 1.0),
    ("inf", [INF] * 4, 0.5, 2, 1e-4, 0.0, 1.0),
    ("random walk, patience 0", list(np.random.default_rng(0).normal(size=30).cumsum()), 0.5, 0, 1e-4, 0.0, 1.0),
    ("min_lr floor", [1.0] * 20, 0.1, 2, 1e-4, 0.005, 1.0),
    ("min_lr between two rates", [1.0] * 12, 0.5, 1, 0.0, 0.3, 0.4),
    ("min_lr equal to the base rate", [1.0] * 8, 0.5, 1, 0.0, 0.01, 0.01),
    ("min_lr above the base rate", [1.0] * 8, 0.5, 2, 1e-4, 0.01, 0.001),
    ("min_lr above the base rate, improving", [1.0, 0.5, 0.25, 0.3, 0.3, 0.3, 0.3], 0.5, 1, 0.0, 0.5, 0.1),
]


def _ours(losses, factor, patience, min_delta, min_lr, base):
    s = get_schedule(dict(name="reduce_on_plateau", factor=factor, patience=patience, min_delta=min_delta,
                          min_lr=min_lr))
    rates = []
    for epoch, value in enumerate(losses):
        rates.append(s(epoch, base))
        s.observe(value)
    rates.append(s(len(losses), base))
    return rates


@pytest.mark.parametrize("case", PLATEAU_CASES, ids=[c[0] for c in PLATEAU_CASES])
def test_reduce_on_plateau_matches_torch(case):
    """The rate before every epoch equals torch's ``ReduceLROnPlateau`` (mode 'min', absolute
    threshold = min_delta, no cooldown, eps 0), including a ``min_lr`` above the base rate, which
    only bounds reductions (it never raises the rate)."""
    torch = pytest.importorskip("torch")
    _, losses, factor, patience, min_delta, min_lr, base = case
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=base)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=factor, patience=patience,
                                                       threshold=min_delta, threshold_mode="abs", cooldown=0,
                                                       min_lr=min_lr, eps=0.0)
    theirs = []
    for value in losses:
        theirs.append(opt.param_groups[0]["lr"])
        sched.step(value)
    theirs.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(_ours(*case[1:]), theirs, rtol=1e-12, atol=0)


def test_reduce_on_plateau_min_lr_never_raises_the_rate():
    """``min_lr`` is a floor for reductions only: above the base rate, the rate stays the base rate."""
    rates = _ours([1.0] * 8, 0.5, 1, 0.0, 0.01, 0.001)
    assert rates == [0.001] * 9
    rates = _ours([1.0] * 8, 0.5, 1, 0.0, 0.3, 0.4)  # reduced once, to the floor, then held there
    assert rates[:3] == [0.4] * 3 and rates[3:] == [0.3] * 6  # (reduced after 2 epochs without improvement)
    assert all(r <= 0.4 for r in rates)


def test_reduce_on_plateau_floor_follows_a_changed_base_rate():
    """The base rate is given at every call (a warm fit may change it): the floor applies to it."""
    s = get_schedule(dict(name="reduce_on_plateau", factor=0.5, patience=0, min_delta=0.0, min_lr=0.05))
    s.observe(1.0)
    s.observe(1.0)  # one reduction: scale 0.5
    assert s(2, 1.0) == 0.5
    assert s(2, 0.08) == 0.05  # 0.04, floored
    assert s(2, 0.02) == 0.02  # the floor is above this base rate: unchanged, never raised


def test_inverse_scaling_counts_epochs_and_its_alias_is_the_same_schedule():
    """``inverse_scaling`` (alias ``invscaling``) is ``base_lr / (epoch + 1) ** power`` per *epoch*;
    scikit-learn's ``invscaling`` counts samples (documented)."""
    for name in ("inverse_scaling", "invscaling"):
        s = get_schedule({"name": name, "power": 0.5})
        assert s.name == "inverse_scaling"
        assert [s(e, 0.1) for e in range(4)] == pytest.approx([0.1 / math.sqrt(e + 1) for e in range(4)], rel=1e-15)
    doc = type(get_schedule("invscaling")).__doc__
    assert "samples" in doc and "epoch" in doc


@pytest.mark.parametrize("epochs,min_lr", [(10, 0.0), (7, 0.01)])
def test_cosine_matches_torch_up_to_its_epochs_then_holds_min_lr(epochs, min_lr):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference (pip install torch==2.13.0)")
    s = get_schedule(dict(name="cosine", epochs=epochs, min_lr=min_lr))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=min_lr)
    theirs = []
    for _ in range(epochs + 1):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    ours = [s(e, 0.1) for e in range(epochs + 1)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose([s(e, 0.1) for e in range(epochs, epochs + 5)], min_lr, rtol=0, atol=1e-15)
