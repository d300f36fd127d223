"""The buffered activations (``forward(z, out=...)``, the training path) give the bits of the
unbuffered ones (the inference path), special values included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlplab.activations import ACTIVATIONS, _zeros, get_activation

SPECIAL = [0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, 88.0, -88.0, 1e30, -1e30]
NAMES = sorted({ACTIVATIONS.get(n).name for n in ACTIVATIONS.names()})


def _bits(a):
    return a.view(np.int32 if a.dtype == np.float32 else np.int64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_buffered_forward_equals_unbuffered(name, dtype, data):
    shape = data.draw(st.tuples(st.integers(1, 40), st.integers(1, 30)))
    z = data.draw(arrays(dtype, shape, elements=st.sampled_from(SPECIAL) | st.floats(-50, 50, width=32)))
    act = get_activation(name)
    with np.errstate(all="ignore"):
        ref = act.forward(z.copy())
        out = np.empty_like(z)
        res = act.forward(z, out=out)
        inplace = z.copy()
        res2 = act.forward(inplace, out=inplace)
    assert res is out and res2 is inplace
    assert np.array_equal(_bits(out), _bits(ref)) and np.array_equal(_bits(inplace), _bits(ref))


def test_relu_keeps_nan_and_signed_zero_and_its_zeros_are_read_only():
    relu = get_activation("relu")
    z = np.array([[np.nan, -0.0, 0.0, -np.inf, np.inf, -2.0, 3.0]], np.float32)
    out = relu.forward(z, out=np.empty_like(z))
    assert np.array_equal(_bits(out), _bits(np.maximum(z, 0)))
    zeros = _zeros(z.shape, z.dtype)
    assert not zeros.flags.writeable and not zeros.any()
    big = np.ones((1, (1 << 18) + 1), np.float32)  # above the cached size: compared with the scalar
    assert relu.forward(-big, out=np.empty_like(big)).max() == 0.0
