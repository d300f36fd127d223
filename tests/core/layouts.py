"""Array layouts for the BLAS tests (test_blas.py, test_bound_step.py)."""

import numpy as np


def layout(a, kind):
    """``a`` as a C-ordered ("C") or F-ordered ("F") copy, or ("S") a strided column block of a
    wider array (what ``gemm`` copies first)."""
    if kind == "C":
        return np.array(a, order="C")
    if kind == "F":
        return np.array(a, order="F")
    wide = np.zeros((a.shape[0], 2 * a.shape[1] + 1), a.dtype)
    wide[:, 1:1 + 2 * a.shape[1]:2] = a
    return wide[:, 1:1 + 2 * a.shape[1]:2]
