"""The one-BLAS matrix products (mlplab.blas) and the SGD step fused into backpropagation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplab.blas import axpy, dot, gemm, gemv
from mlplab.network import MLP
from mlplab.optimizers import SGD
from mlplab.training import Trainer

from layouts import layout as _layout


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 9), k=st.integers(0, 9), n=st.integers(0, 9),
       la=st.sampled_from(["C", "F", "S", "T"]), lb=st.sampled_from(["C", "F", "S", "T"]),
       lo=st.sampled_from(["C", "F"]), dtype=st.sampled_from([np.float32, np.float64]),
       alpha=st.sampled_from([1.0, -1.0, 0.5]), beta=st.sampled_from([0.0, 1.0, 0.25]))
def test_gemm_equals_numpy_for_every_layout(m, k, n, la, lb, lo, dtype, alpha, beta):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    A = rng.normal(size=(m, k)).astype(dtype)
    B = rng.normal(size=(k, n)).astype(dtype)
    a = np.ascontiguousarray(A.T).T if la == "T" else _layout(A, la)  # "T": a transposed view
    b = np.ascontiguousarray(B.T).T if lb == "T" else _layout(B, lb)
    C0 = rng.normal(size=(m, n)).astype(dtype)
    out = _layout(C0, lo)
    if beta == 0.0:
        out[...] = np.nan  # never read
    res = gemm(a, b, out, alpha=alpha, beta=beta)
    assert res is out
    want = alpha * (A.astype(np.float64) @ B.astype(np.float64)) + (beta * C0 if beta else 0.0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 9), k=st.integers(0, 9), la=st.sampled_from(["C", "F", "S", "T"]),
       dtype=st.sampled_from([np.float32, np.float64]),
       alpha=st.sampled_from([1.0, -1.0, 0.5]), beta=st.sampled_from([0.0, 1.0, 0.25]))
def test_gemv_equals_numpy_for_every_layout(m, k, la, dtype, alpha, beta):
    rng = np.random.default_rng(m * 10 + k)
    A = rng.normal(size=(m, k)).astype(dtype)
    a = np.ascontiguousarray(A.T).T if la == "T" else _layout(A, la)
    x = rng.normal(size=k).astype(dtype)
    y0 = rng.normal(size=m).astype(dtype)
    y = y0.copy()
    if beta == 0.0:
        y[...] = np.nan  # never read
    assert gemv(a, x, y, alpha=alpha, beta=beta) is y
    want = alpha * (A.astype(np.float64) @ x.astype(np.float64)) + (beta * y0 if beta else 0.0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


def test_gemv_rejects_mismatched_shapes_and_falls_back_for_other_dtypes():
    with pytest.raises(ValueError, match="gemv shapes"):
        gemv(np.ones((2, 3), np.float32), np.ones(2, np.float32), np.empty(2, np.float32))
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    y = np.zeros(2, np.int64)
    gemv(a, np.ones(3, np.int64), y)
    np.testing.assert_array_equal(y, a.sum(axis=1))


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(7,), (3, 4), (2, 3, 5), (0, 4)]), dtype=st.sampled_from([np.float32, np.float64]),
       alpha=st.floats(-3, 3, allow_nan=False), layout=st.sampled_from(["C", "strided"]))
def test_axpy_equals_numpy_and_leaves_x_alone(shape, dtype, alpha, layout):
    rng = np.random.default_rng(len(shape))
    x = rng.normal(size=shape).astype(dtype)
    y0 = rng.normal(size=shape).astype(dtype)
    if layout == "strided" and len(shape) >= 2:  # a strided view: the NumPy fallback
        big = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
        y = big[..., ::2]
        y[...] = y0
    else:
        y = y0.copy()
    x_before = x.copy()
    assert axpy(alpha, x, y) is y
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, y0.astype(np.float64) + alpha * x.astype(np.float64), rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, x_before)


def test_axpy_rejects_mismatched_shapes_and_falls_back_for_other_dtypes():
    with pytest.raises(ValueError, match="axpy shapes"):
        axpy(1.0, np.ones(3, np.float32), np.ones(4, np.float32))
    y = np.arange(4, dtype=np.int64)
    axpy(2, np.ones(4, np.int64), y)
    np.testing.assert_array_equal(y, [2, 3, 4, 5])


def test_l2_goes_into_the_weight_gradient():
    """With an L2 penalty, backward's dW is the data gradient plus l2 * W (accumulated by the
    product itself), for every Dense layer; biases get no penalty."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 6))
    y = rng.integers(0, 3, 20)
    a = MLP([6, 5, 3], "tanh", "softmax", "cross_entropy", dtype="float64", seed=1, l2=0.3)
    b = MLP([6, 5, 3], "tanh", "softmax", "cross_entropy", dtype="float64", seed=1)
    a.loss_and_gradients(X, y)
    b.loss_and_gradients(X, y)
    for la, lb in zip(a.dense_layers, b.dense_layers):
        np.testing.assert_allclose(la.dW, lb.dW + 0.3 * lb.W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(la.db, lb.db, rtol=1e-12, atol=1e-14)


def test_dense_bias_step_is_the_column_sum():
    """The fused bias step (one gemv with ones) subtracts the column sums of dz, for every
    batch size seen (the ones vector is cached per size)."""
    from mlplab.layers import Dense

    rng = np.random.default_rng(0)
    layer = Dense(5, 3, np.float64)
    for n in (7, 2, 7):
        x, dz = rng.normal(size=(n, 5)), rng.normal(size=(n, 3))
        layer.forward(x, training=True)
        b0 = layer.b.copy()
        layer.backward_step(dz, need_dx=False)
        np.testing.assert_allclose(layer.b, b0 - dz.sum(axis=0), rtol=1e-12, atol=1e-12)
        layer.backward(dz, need_dx=False)
        np.testing.assert_allclose(layer.db, dz.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="gemm shapes"):
        gemm(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), np.empty((2, 2), np.float32))


def test_read_only_outputs_are_never_written():
    out = np.zeros((2, 2), np.float32)
    out.flags.writeable = False
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="read-only"):
        gemm(a, a, out, alpha=-1.0, beta=1.0)
    y = np.zeros(2, np.float32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gemv(a, np.ones(2, np.float32), y)
    assert (out == 0).all() and (y == 0).all()


@pytest.mark.parametrize("which", ["a", "b"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-0.5, 0.0), (1.0, 0.0)])
def test_a_copied_strided_operand_lives_until_blas_has_read_it(monkeypatch, which, alpha, beta):
    """A column block of a wider matrix (a stacked first layer's W, seen by predict) is copied
    before the BLAS call; the copy must outlive the call. Before the fix it was freed first, and
    arrays of its size allocated meanwhile (here NaN-filled ones) became the operand: a whole
    predict gave NaN, argmax 0, one class (the 0.100 snapshot accuracy of a resumed stacked cell)."""
    import mlplab.blas as blas

    rng = np.random.default_rng(1)
    wide = rng.normal(size=(64, 512)).astype(np.float32)
    if which == "a":
        a, b = wide[:, ::8], rng.normal(size=(64, 256)).astype(np.float32)
    else:
        a, b = rng.normal(size=(100, 64)).astype(np.float32), wide[:, :256]
    strided = a if which == "a" else b
    assert not (strided.flags.c_contiguous or strided.flags.f_contiguous)
    c0 = rng.normal(size=(a.shape[0], b.shape[1])).astype(np.float32)
    want = alpha * (a.astype(np.float64) @ b.astype(np.float64)) + beta * c0
    real = blas._GEMM[np.dtype(np.float32)]

    def clobbering(*args):  # what another allocation between the copy and the call does
        junk = [np.full(shape, np.nan, np.float32) for shape in ((64, 64), (64, 256)) for _ in range(3)]
        result = real(*args)
        del junk
        return result

    monkeypatch.setitem(blas._GEMM, np.dtype(np.float32), clobbering)
    out = c0.copy()
    gemm(a, b, out, alpha=alpha, beta=beta)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    out = c0.copy()
    call = blas.bind_gemm(a, b, out, alpha=alpha, beta=beta)
    for _ in range(2):
        out[...] = c0
        call()
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_gemm_other_dtypes_fall_back_to_numpy():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    out = np.zeros((2, 2), np.int64)
    gemm(a, a.T, out)
    np.testing.assert_array_equal(out, a @ a.T)


def test_dot_is_the_flat_inner_product():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 7)).astype(np.float32)
    assert dot(a, a) == pytest.approx(float(np.vdot(a, a)), rel=1e-6)
    assert dot(a.T, a.T) == pytest.approx(float(np.vdot(a, a)), rel=1e-6)  # non-contiguous view
    assert dot(np.zeros(0, np.float32), np.zeros(0, np.float32)) == 0.0


@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_sgd_step_equals_backward_then_update(l2, dtype):
    """backward_step: W = (1 - lr*l2) W - lr*dW in one gemm; the same as the separate update."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(32, 12)).astype(dtype)
    y = rng.integers(0, 4, 32)
    lr = 0.3
    nets = [MLP([12, 9, 7, 4], "tanh", "softmax", "cross_entropy", init="glorot", l2=l2, dtype=dtype, seed=3)
            for _ in range(2)]
    fused, plain = nets
    out = fused.forward(X, training=True)
    g = np.empty_like(out)
    fused.loss.value_and_grad(out, y, g)
    g *= lr
    fused.backward_step(g, lr)

    out = plain.forward(X, training=True)
    g = np.empty_like(out)
    plain.loss.value_and_grad(out, y, g)
    plain.backward(g)  # true gradients, plus l2 * W
    for p, dp in zip(plain.parameters(), plain.gradients()):
        p -= lr * dp
    tol = 1e-6 if dtype == "float32" else 1e-13
    for a, b in zip(fused.parameters(), plain.parameters()):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_plain_sgd_training_is_the_sgd_formula_step_by_step():
    """The Trainer's fused path against SGD.step on the true gradients, over a few minibatches."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 10)).astype(np.float64)
    y = rng.integers(0, 3, 60)
    a = MLP([10, 8, 3], "sigmoid", "sigmoid", "mse", dtype="float64", seed=5)
    b = MLP([10, 8, 3], "sigmoid", "sigmoid", "mse", dtype="float64", seed=5)
    tr = Trainer(a, SGD(a.parameters(), lr=0.2), batch_size=20, shuffle=False, train_metrics="none")
    tr.fit(X, y, epochs=2)
    opt = SGD(b.parameters(), lr=0.2)
    for _ in range(2):
        for s in range(0, 60, 20):
            b.loss_and_gradients(X[s:s + 20], y[s:s + 20])
            opt.step(b.gradients())
    assert tr.optimizer.t == opt.t == 6
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)


def test_blas_threads_limits_the_library_of_the_products_even_before_it_is_loaded():
    """threadpoolctl limits only libraries already loaded: ``blas_threads`` must load mlplab's
    BLAS (SciPy's OpenBLAS on the fallback backend) first, or a process that enters it early
    keeps every thread."""
    import os
    import subprocess
    import sys

    code = ("from mlplab.environment import blas_threads\n"
            "with blas_threads(1):\n"
            "    import mlplab.blas\n"  # (a no-op import if blas_threads loaded it already)
            "    from threadpoolctl import threadpool_info\n"
            "    info = [i for i in threadpool_info() if i['user_api'] == 'blas']\n"
            "    print(len(info), sorted({i['num_threads'] for i in info}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    n, threads = out.stdout.split(" ", 1)
    assert int(n) >= 1 and threads.strip() == "[1]", out.stdout
    import mlplab.blas

    if mlplab.blas.BACKEND == "numpy":  # SciPy's build is loaded (and limited) too, though idle
        assert int(n) >= 2, out.stdout


_BACKEND_CHECK = """
import numpy as np
import mlplab.blas as b
from mlplab.blas import axpy, dot, gemm, gemv
rng = np.random.default_rng(0)
for dt in (np.float32, np.float64):
    A, B = rng.normal(size=(7, 5)).astype(dt), rng.normal(size=(5, 3)).astype(dt)
    C0 = rng.normal(size=(7, 3)).astype(dt)
    for a in (A, np.asfortranarray(A)):
        for out in (C0.copy(), np.asfortranarray(C0)):
            gemm(a, B, out, alpha=-0.5, beta=2.0)
            assert np.allclose(out, -0.5 * (A @ B) + 2.0 * C0, rtol=1e-5, atol=1e-5)
    y = np.ones(7, dt)
    gemv(A, B[:, 0].copy(), y, alpha=2.0, beta=1.0)
    assert np.allclose(y, 1.0 + 2.0 * (A @ B[:, 0]), rtol=1e-5, atol=1e-5)
    z = C0.copy()
    axpy(3.0, C0, z)
    assert np.allclose(z, 4.0 * C0, rtol=1e-6)
    assert abs(dot(A, A) - float(np.vdot(A, A))) < 1e-3
ro = np.ones((4, 4), np.float32)
ro.flags.writeable = False  # a read-only operand takes the slower address lookup
out = np.zeros((4, 4), np.float32)
gemm(ro, ro, out, alpha=1.0, beta=1.0)
assert (out == 4.0).all()
print(b.BACKEND)
"""


@pytest.mark.parametrize("forced", [None, "scipy"])
def test_blas_backend_is_chosen_at_import_and_both_compute_the_same(forced):
    """Default: NumPy's own OpenBLAS where its CBLAS symbols are found (NumPy's wheels), else
    SciPy's; ``MLPLAB_BLAS=scipy`` forces SciPy's. Both backends compute every layout alike."""
    import os
    import subprocess
    import sys

    import mlplab.blas

    env = {k: v for k, v in os.environ.items() if k != "MLPLAB_BLAS"}
    if forced:
        env["MLPLAB_BLAS"] = forced
    out = subprocess.run([sys.executable, "-c", _BACKEND_CHECK], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    got = out.stdout.strip()
    if forced:
        assert got == forced
    else:
        assert got == mlplab.blas.BACKEND
        assert got == ("numpy" if mlplab.blas._numpy_openblas_path() else "scipy")


def test_environment_names_the_blas_of_the_products():
    import mlplab.blas
    from mlplab.environment import environment_info

    env = environment_info()
    assert env["mlplab_blas"] == mlplab.blas.BACKEND
    used = [b for b in env["blas"] if b.get("used_by_mlplab")]
    assert all(b["user_api"] == "blas" for b in used)
    if mlplab.blas.BACKEND == "numpy":  # (a SciPy without bundled libraries is not recognised)
        assert len(used) == 1
