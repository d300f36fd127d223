"""Matrix products of the network, all through one BLAS: NumPy's own OpenBLAS where it can be
reached, else SciPy's.

Why not only ``np.matmul``: BLAS's ``gemm`` computes ``C = alpha * A @ B + beta * C`` in one call,
so a plain SGD step ``W -= lr * X.T @ dZ`` needs no gradient buffer and no separate update
pass over the weights (for 784-500-500-10 that pass reads and writes 2.6 MB per minibatch,
single-threaded in NumPy). NumPy's ``matmul`` has no ``alpha`` or ``beta``.

Which BLAS (:data:`BACKEND`):

* ``"numpy"``: the OpenBLAS that NumPy's wheels bundle (``scipy-openblas64``), called through
  its CBLAS interface with :mod:`ctypes` for the products with ``alpha``/``beta``, ``gemv``,
  ``axpy``, and through ``np.matmul`` / ``np.vdot`` for the plain ones (the same library, less
  call overhead). On this project's 2-core machine its ``sgemm`` is faster than SciPy's
  bundled build for the network's products: a 784-500-500-10 SGD epoch took 1.22 against
  1.56 s on two threads and 1.91 against 2.09 s on one
  (``benchmarks/bench_blas_backends.py``; ``benchmarks/bench_training.py`` prints both builds'
  matmul floors).
* ``"scipy"``: SciPy's ``?gemm``/``?gemv``/``?axpy``/``?dot`` wrappers, used where NumPy's
  library or its CBLAS symbols cannot be found or fail the self-check run at import (a NumPy
  linked to another BLAS). ``MLPLAB_BLAS=scipy`` forces it.

Why *every* product through the one library: NumPy and SciPy ship separate OpenBLAS builds with
separate thread pools. Alternating between them inside one step was measured 5x slower on two
threads (each pool's idle threads keep spinning while the other works). So every product and
large dot in the layers, losses and optimizers calls this module. ``threadpoolctl`` and
``OPENBLAS_NUM_THREADS`` limit both libraries alike.

Arrays are NumPy's usual C-ordered ones. The CBLAS calls are row-major, and an F-ordered
operand (a transposed view ``x.T``) is passed as its C-ordered transpose with the transpose
flag; an F-ordered output is computed as ``out.T = b.T @ a.T``. Operands that are neither C- nor
F-contiguous (strided column blocks) are copied first.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Callable
from functools import partial

import numpy as np

#: which BLAS the products go through: "numpy" (NumPy's OpenBLAS) or "scipy"
BACKEND = "scipy"

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


# -- NumPy's OpenBLAS through CBLAS ----------------------------------------------------------
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _numpy_openblas_path() -> str | None:
    """The OpenBLAS shared library bundled with NumPy's wheels (Linux, macOS, Windows)."""
    here = os.path.dirname(np.__file__)
    for pattern in (os.path.join(here + ".libs", "*scipy_openblas64_*"),  # Linux, Windows
                    os.path.join(here, ".dylibs", "*scipy_openblas64_*")):  # macOS
        found = sorted(p for p in glob.glob(pattern) if p.endswith((".so", ".dylib", ".dll")))
        if found:
            return found[0]
    return None


def _load_cblas():
    """``{dtype: (gemm, gemv, axpy)}`` bound to NumPy's OpenBLAS, or None."""
    if os.environ.get("MLPLAB_BLAS", "").strip().lower() == "scipy":
        return None
    path = _numpy_openblas_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)  # already loaded by NumPy: the same library, the same threads
    except OSError:
        return None
    i64, vp, ci = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    fns = {}
    for dt, ch, real in ((_F32, "s", ctypes.c_float), (_F64, "d", ctypes.c_double)):
        try:  # ILP64 symbols (the "64_" suffix): every integer argument is 64 bits wide
            gemm = getattr(lib, f"scipy_cblas_{ch}gemm64_")
            gemv = getattr(lib, f"scipy_cblas_{ch}gemv64_")
            axpy = getattr(lib, f"scipy_cblas_{ch}axpy64_")
        except AttributeError:
            return None
        gemm.argtypes = [ci, ci, ci, i64, i64, i64, real, vp, i64, vp, i64, real, vp, i64]
        gemm.restype = None
        gemv.argtypes = [ci, ci, i64, i64, real, vp, i64, vp, i64, real, vp, i64]
        gemv.restype = None
        axpy.argtypes = [i64, real, vp, i64, vp, i64]
        axpy.restype = None
        fns[dt] = (gemm, gemv, axpy)
    return fns


_CBLAS = _load_cblas()


def _addr(x: np.ndarray) -> int:
    """Address of the first element of a C-contiguous array (0.5 us, against 1.4 us for
    ``x.ctypes.data``; read-only arrays take the slower way)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(x))
    except (TypeError, ValueError, BufferError):
        return x.ctypes.data


def _row_major(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``(P, trans, ld)``: ``P`` C-contiguous with ``op_trans(P) == x`` (a copy if ``x`` is
    neither C- nor F-contiguous; keep ``P`` alive until the call returns)."""
    flags = x.flags
    if flags.c_contiguous:
        return x, _NO_TRANS, max(1, x.shape[1])
    if flags.f_contiguous:
        return x.T, _TRANS, max(1, x.shape[0])
    x = np.ascontiguousarray(x)
    return x, _NO_TRANS, max(1, x.shape[1])


def _gemm_cblas_call(a, b, out, alpha, beta, fn):
    """``(f, args, kwargs, keep)`` such that ``f(*args, **kwargs)`` computes the product into
    ``out`` while the caller holds ``keep``. ``args`` may hold raw addresses of the operands, and
    an operand that is neither C- nor F-contiguous is copied here: ``keep`` holds that copy, and
    its memory is freed (and may be reused, say by the next array of its size) once ``keep`` is
    dropped. Bind such operands only once."""
    m, n = out.shape
    k = a.shape[1]
    if out.flags.c_contiguous:
        pa, ta, lda = _row_major(a)
        pb, tb, ldb = _row_major(b)
        c = out
    else:  # F-ordered: out.T = b.T @ a.T
        pa, ta, lda = _row_major(b.T)
        pb, tb, ldb = _row_major(a.T)
        c = out.T
        m, n = n, m
    keep = (pa, pb, c)
    if alpha == 1.0 and beta == 0.0:
        # the plain product: NumPy's matmul calls the same sgemm with less overhead
        return np.matmul, (pa.T if ta == _TRANS else pa, pb.T if tb == _TRANS else pb), {"out": c}, keep
    return fn, (_ROW_MAJOR, ta, tb, m, n, k, alpha, _addr(pa), lda, _addr(pb), ldb, beta, _addr(c),
                max(1, n)), {}, keep


def _gemm_cblas(a, b, out, alpha, beta, fn):
    f, args, kwargs, keep = _gemm_cblas_call(a, b, out, alpha, beta, fn)
    f(*args, **kwargs)  # ``keep`` alive until here: ``args`` may point into a copy it holds
    del keep
    return out


# -- SciPy's OpenBLAS ------------------------------------------------------------------------
# Loaded in every case, though only the fallback computes with it: thread limits
# (``threadpoolctl``, :func:`mlplab.environment.blas_threads`) reach only the libraries already
# loaded, and scikit-learn and SciPy code run beside training (metrics, the benchmarks'
# reference products) would otherwise load it later with every thread.
from scipy.linalg import blas as _scipy  # noqa: E402


def _scipy_blas():
    return ({_F32: _scipy.sgemm, _F64: _scipy.dgemm}, {_F32: _scipy.sgemv, _F64: _scipy.dgemv},
            {_F32: _scipy.saxpy, _F64: _scipy.daxpy}, {_F32: _scipy.sdot, _F64: _scipy.ddot})


if _CBLAS is not None:
    _GEMM = {dt: f[0] for dt, f in _CBLAS.items()}
    _GEMV = {dt: f[1] for dt, f in _CBLAS.items()}
    _AXPY = {dt: f[2] for dt, f in _CBLAS.items()}
    _DOT: dict = {}
    BACKEND = "numpy"
else:
    _GEMM, _GEMV, _AXPY, _DOT = _scipy_blas()


def _fortran_operand(m: np.ndarray) -> tuple[np.ndarray, int]:
    """``(P, t)`` with ``P`` Fortran-contiguous and ``op_t(P) == m`` (t=1: transposed)."""
    flags = m.flags
    if flags.f_contiguous:
        return m, 0
    if not flags.c_contiguous:
        m = np.ascontiguousarray(m)
    return m.T, 1


def _gemm_scipy(a, b, out, alpha, beta, fn):
    if out.flags.f_contiguous:  # column-major already: out = a @ b directly
        pa, ta = _fortran_operand(a)
        pb, tb = _fortran_operand(b)
        c = out
    else:  # out.T = b.T @ a.T, all Fortran-ordered views
        pa, ta = _fortran_operand(b.T)
        pb, tb = _fortran_operand(a.T)
        c = out.T
    r = fn(alpha, pa, pb, beta=beta, c=c, trans_a=ta, trans_b=tb, overwrite_c=1)
    # f2py returns a view of ``out`` (cheap checks first); had it copied, write the result back
    if r.base is not out and r is not c and r.base is not c and not np.shares_memory(r, c):
        c[...] = r
    return out


def _gemm_shape(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> tuple[int, int, int]:
    m, k = a.shape
    k2, n = b.shape
    if k != k2 or out.shape != (m, n):
        raise ValueError(f"gemm shapes do not match: {a.shape} @ {b.shape} -> {out.shape}")
    return m, k, n


def _gemv_shape(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    m, k = a.shape
    if x.shape != (k,) or y.shape != (m,):
        raise ValueError(f"gemv shapes do not match: {a.shape} @ {x.shape} -> {y.shape}")
    return m, k


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``out = alpha * (a @ b) + beta * out`` in place; returns ``out``.

    ``a`` and ``b`` may be transposed views (``x.T``); ``out`` must be C- or F-contiguous. With
    ``beta == 0`` the old contents of ``out`` are never read (it may be uninitialised).
    """
    m, k, n = _gemm_shape(a, b, out)
    dt = out.dtype
    fn = _GEMM.get(dt)
    flags = out.flags
    if (fn is None or a.dtype != dt or b.dtype != dt or not (flags.f_contiguous or flags.c_contiguous)
            or not flags.writeable):
        res = np.matmul(a, b)  # not a BLAS type or layout: NumPy (never on the training path)
        if alpha != 1.0:
            res *= alpha
        if beta != 0.0:
            res += beta * out
        out[...] = res
        return out
    if m == 0 or n == 0:
        return out
    if k == 0:
        if beta == 0.0:
            out.fill(0)
        else:
            out *= beta
        return out
    if _CBLAS is not None:
        return _gemm_cblas(a, b, out, alpha, beta, fn)
    return _gemm_scipy(a, b, out, alpha, beta, fn)


def gemv(a: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``y = alpha * (a @ x) + beta * y`` in place for a matrix ``a`` and vectors ``x``, ``y``;
    returns ``y``. The layers use it for column sums, ``a = dz.T`` and ``x`` ones: one BLAS
    call does the bias gradient, or with ``beta=1`` the bias step itself."""
    m, k = _gemv_shape(a, x, y)
    dt = y.dtype
    fn = _GEMV.get(dt)
    if (fn is None or a.dtype != dt or x.dtype != dt or not y.flags.c_contiguous or not y.flags.writeable
            or not (a.flags.c_contiguous or a.flags.f_contiguous) or m == 0):
        res = alpha * (a @ x)  # not a BLAS type or layout
        if beta != 0.0:
            res += beta * y
        y[...] = res
        return y
    if k == 0:
        if beta == 0.0:
            y.fill(0)
        else:
            y *= beta
        return y
    if _CBLAS is not None:
        xc = np.ascontiguousarray(x)
        pa, ta, lda = _row_major(a)
        rows, cols = (m, k) if ta == _NO_TRANS else (k, m)
        fn(_ROW_MAJOR, ta, rows, cols, alpha, _addr(pa), lda, _addr(xc), 1, beta, _addr(y), 1)
        return y
    if a.flags.f_contiguous:
        r = fn(alpha, a, x, beta=beta, y=y, trans=0, overwrite_y=1)
    else:  # a C-ordered: its transpose is Fortran-ordered
        r = fn(alpha, a.T, x, beta=beta, y=y, trans=1, overwrite_y=1)
    if r is not y:  # f2py had to copy (never expected): write the result back
        y[...] = r
    return y


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y += alpha * x`` in place for two same-shaped arrays; returns ``y``.

    One pass over ``y`` instead of NumPy's two (``x *= alpha; y += x``), and BLAS splits it over
    its threads: the optimizers' last step ``p -= c * update``. Measured 1.7x faster than the
    two NumPy passes for 784x256 float32 parameters and 3.5x for 784x500 (beyond one core's L2).
    ``x`` is not modified.

    ``x`` and ``y`` may overlap (views of one array): BLAS would then read elements of ``x``
    it has already overwritten through ``y``, so such a call goes through NumPy, which computes
    ``alpha * x`` into a temporary first. The optimizers never pass overlapping arrays; the
    check compares the two addresses the BLAS call needs anyway, so it costs them nothing.
    """
    if x.shape != y.shape:
        raise ValueError(f"axpy shapes do not match: {x.shape} and {y.shape}")
    fn = _AXPY.get(y.dtype)
    if not (fn is None or x.dtype != y.dtype or not (x.flags.c_contiguous and y.flags.c_contiguous)
            or y.size == 0 or not y.flags.writeable):
        if _CBLAS is not None:
            ax, ay = _addr(x), _addr(y)
            if abs(ax - ay) >= y.nbytes:  # disjoint: both contiguous, of y.nbytes bytes
                fn(y.size, alpha, ax, 1, ay, 1)
                return y
        elif not np.may_share_memory(x, y):
            r = fn(np.ravel(x), np.ravel(y), a=alpha)
            if not np.shares_memory(r, y):  # f2py had to copy (never expected): write the result back
                y[...] = r.reshape(y.shape)
            return y
    y += alpha * x  # not a BLAS type or layout, or overlapping arrays
    return y


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a * b)`` over all elements of two same-shaped arrays."""
    fn = _DOT.get(a.dtype)
    if fn is None or b.dtype != a.dtype or a.size == 0:
        return float(np.vdot(a, b))  # NumPy's BLAS ``?dot`` for contiguous float arrays
    return float(fn(np.ravel(a), np.ravel(b)))


# -- bound calls: the checks done once, for a training loop's fixed buffers -------------------
def _contiguous(x: np.ndarray) -> bool:
    return x.flags.c_contiguous or x.flags.f_contiguous


def bind_gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, alpha: float = 1.0,
              beta: float = 0.0) -> Callable[[], object]:
    """A call with no arguments that does ``gemm(a, b, out, alpha, beta)``: the same BLAS call
    with the same arguments, so the same bits, with the shape, type and layout checks and the
    argument list built once. A training step calls each of its products hundreds of times on
    the same buffers; for 784-50-10 the checks cost as much as the small products themselves.

    The call holds references to ``a``, ``b`` and ``out`` (their memory stays valid) and reads
    their *current contents* each time. Operands that :func:`gemm` would copy (neither C- nor
    F-contiguous) are bound as a plain :func:`gemm` call instead, which copies them each time.
    """
    m, k, n = _gemm_shape(a, b, out)
    dt = out.dtype
    fn = _GEMM.get(dt)
    if (_CBLAS is None or fn is None or a.dtype != dt or b.dtype != dt or not out.flags.writeable
            or not (_contiguous(out) and _contiguous(a) and _contiguous(b)) or 0 in (m, n, k)):
        call = partial(gemm, a, b, out, alpha, beta)
        keep: tuple = ()
    else:
        f, args, kwargs, keep = _gemm_cblas_call(a, b, out, alpha, beta, fn)
        call = partial(f, *args, **kwargs)
    call.keep = (a, b, out, *keep)  # type: ignore[attr-defined]  # the addresses in ``args`` stay valid
    return call


def bind_gemv(a: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: float = 1.0,
              beta: float = 0.0) -> Callable[[], object]:
    """A call with no arguments that does ``gemv(a, x, y, alpha, beta)`` (see :func:`bind_gemm`)."""
    m, k = _gemv_shape(a, x, y)
    dt = y.dtype
    fn = _GEMV.get(dt)
    if (_CBLAS is None or fn is None or a.dtype != dt or x.dtype != dt or not y.flags.c_contiguous
            or not y.flags.writeable or not x.flags.c_contiguous or not _contiguous(a) or 0 in (m, k)):
        call = partial(gemv, a, x, y, alpha, beta)
    else:
        pa, ta, lda = _row_major(a)
        rows, cols = (m, k) if ta == _NO_TRANS else (k, m)
        call = partial(fn, _ROW_MAJOR, ta, rows, cols, alpha, _addr(pa), lda, _addr(x), 1, beta, _addr(y), 1)
    call.keep = (a, x, y)  # type: ignore[attr-defined]
    return call


def _self_check() -> bool:
    """Products through the CBLAS binding equal NumPy's (a wrong symbol or integer width would
    show here, before any training)."""
    rng = np.random.default_rng(0)
    for dt in (_F32, _F64):
        a, b = rng.normal(size=(5, 3)).astype(dt), rng.normal(size=(3, 4)).astype(dt)
        c0 = rng.normal(size=(5, 4)).astype(dt)
        c = c0.copy()
        gemm(a, b, c, alpha=0.5, beta=2.0)
        cf = np.asfortranarray(c0)
        gemm(a.T.copy().T, b, cf, alpha=0.5, beta=2.0)
        y = np.ones(5, dt)
        gemv(a, b[:, 0].copy(), y, alpha=-1.0, beta=1.0)
        z = c0.copy()
        axpy(-0.5, c0, z)
        want = 0.5 * (a @ b) + 2.0 * c0
        tol = 1e-5 if dt == _F32 else 1e-12
        if not (np.allclose(c, want, rtol=tol, atol=tol) and np.allclose(cf, want, rtol=tol, atol=tol)
                and np.allclose(y, 1.0 - a @ b[:, 0], rtol=tol, atol=tol)
                and np.allclose(z, 0.5 * c0, rtol=tol, atol=tol)):
            return False
    return True


if _CBLAS is not None and not _self_check():  # pragma: no cover - a NumPy with another BLAS
    _CBLAS = None
    _GEMM, _GEMV, _AXPY, _DOT = _scipy_blas()
    BACKEND = "scipy"
