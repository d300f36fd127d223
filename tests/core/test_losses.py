"""Loss details not covered by the gradient checks."""

import numpy as np
import pytest


@pytest.mark.parametrize("k", [1, 2, 3, 10, 32, 33])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_row_max_is_numpys_row_max(k, dtype):
    """The bound cross-entropy's running column maximum gives max(axis=1) bit for bit, NaN and
    infinities included (a NaN row must stay NaN: the divergence guard reads it)."""
    from mlplab.losses import _row_max

    rng = np.random.default_rng(k)
    a = rng.normal(size=(50, k)).astype(dtype)
    a[3, 0] = np.nan
    a[4, -1] = np.inf
    a[5, :] = -np.inf
    a[6, k // 2] = np.nan
    out = np.empty(50, dtype)
    _row_max(a, out)()
    np.testing.assert_array_equal(out, a.max(axis=1))
    assert np.isnan(out[3]) and np.isnan(out[6])
