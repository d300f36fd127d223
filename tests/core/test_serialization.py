"""Model files: round trip, exact resume, and clear errors for every kind of bad file."""

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplab.errors import ModelFileError
from mlplab.network import MLP
from mlplab.serialization import FORMAT_VERSION, load_model, restore_trainer, save_model
from mlplab.training import Trainer


@pytest.fixture
def saved(tmp_path, digits):
    X, y = digits
    net = MLP([64, 16, 10], "relu", "softmax", "cross_entropy", init="he", seed=2)
    tr = Trainer(net, "adam", lr=0.01, batch_size=64)
    tr.fit(X, y, 2)
    path = tmp_path / "m.npz"
    save_model(path, net, trainer=tr, preprocessing={"scaler": {"kind": "unit", "pixel_max": 16}},
               classes=list("0123456789"), metrics={"accuracy": 0.5})
    return path, net, tr


def test_round_trip(saved, digits):
    path, net, _ = saved
    m = load_model(path)
    X, _ = digits
    assert np.array_equal(m.net.predict_proba(X), net.predict_proba(X))
    assert m.classes == list("0123456789")
    assert m.meta["format_version"] == FORMAT_VERSION
    assert m.meta["network"]["sizes"] == [64, 16, 10]
    assert m.meta["versions"]["numpy"] == np.__version__
    assert m.preprocessing["scaler"]["kind"] == "unit"


def test_resume_from_file_is_exact(saved, digits):
    path, net, tr = saved
    X, y = digits
    m = load_model(path)
    tr2 = Trainer(m.net, "adam", lr=0.01, batch_size=64)
    restore_trainer(m, tr2)
    tr.fit(X, y, 4)
    tr2.fit(X, y, 4)
    assert all(np.array_equal(a, b) for a, b in zip(net.parameters(), m.net.parameters()))


def test_never_unpickles(saved):
    path, _, _ = saved
    with zipfile.ZipFile(path) as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    # an object array (which would need pickle) is refused
    bad = path.with_name("obj.npz")
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for n in src.namelist():
            dst.writestr(n, src.read(n))
        dst.writestr("extra/evil.npy", buf.getvalue())
    with pytest.raises(ModelFileError, match="object arrays"):
        load_model(bad)


def _rewrite(path, out, meta_fn=None, drop=None, replace=None):
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            data = src.read(n)
            if drop and n == drop:
                continue
            if n == "__meta__.npy" and meta_fn:
                arr = np.load(io.BytesIO(data))
                meta = meta_fn(json.loads(arr.tobytes()))
                b = io.BytesIO()
                np.save(b, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
                data = b.getvalue()
            if replace and n in replace:
                data = replace[n]
            dst.writestr(n, data)
    return out


def _npy(arr):
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


@pytest.mark.parametrize("case,needle", [
    ("missing", "no such model file"),
    ("directory", "is a directory"),
    ("empty", "not an mlplab model file"),
    ("truncated", "not an mlplab model file"),
    ("foreign_npz", "no __meta__"),
    ("foreign_format", "not an mlplab model file"),
    ("future", "newer mlplab"),
    ("shape", "architecture needs"),
    ("missing_param", "parameter 1 is missing"),
    ("nan", "non-finite"),
    ("bad_json", "not valid JSON"),
    ("lying_header", "declares"),
    ("bad_network", "inconsistent network description"),
])
def test_bad_model_files(tmp_path, saved, case, needle):
    path, _, _ = saved
    target = tmp_path / f"{case}.npz"
    if case == "missing":
        target = tmp_path / "nope.npz"
    elif case == "directory":
        target.mkdir()
    elif case == "empty":
        target.write_bytes(b"")
    elif case == "truncated":
        target.write_bytes(path.read_bytes()[:-300])
    elif case == "foreign_npz":
        np.savez(target, a=np.zeros(3))
    elif case == "foreign_format":
        _rewrite(path, target, meta_fn=lambda m: {**m, "format": "keras"})
    elif case == "future":
        _rewrite(path, target, meta_fn=lambda m: {**m, "format_version": FORMAT_VERSION + 1})
    elif case == "shape":
        _rewrite(path, target, replace={"param/0.npy": _npy(np.zeros((64, 17), np.float32))})
    elif case == "missing_param":
        _rewrite(path, target, drop="param/1.npy")
    elif case == "nan":
        _rewrite(path, target, replace={"param/1.npy": _npy(np.full(16, np.nan, np.float32))})
    elif case == "bad_json":
        _rewrite(path, target, replace={"__meta__.npy": _npy(np.frombuffer(b"{not json", np.uint8))})
    elif case == "lying_header":
        raw = _npy(np.zeros(16, np.float32)).replace(b"(16,)", b"(10000000000,)".ljust(5))
        _rewrite(path, target, replace={"param/1.npy": raw})
    elif case == "bad_network":
        _rewrite(path, target, meta_fn=lambda m: {**m, "network": {**m["network"], "sizes": [64, 0, 10]}})
    with pytest.raises(ModelFileError, match=needle) as info:
        load_model(target)
    assert "\n" not in str(info.value)


def test_refuses_to_save_nan_weights(tmp_path):
    net = MLP([3, 2])
    net.parameters()[0][0, 0] = np.nan
    with pytest.raises(ModelFileError, match="non-finite"):
        save_model(tmp_path / "x.npz", net)
    assert not (tmp_path / "x.npz").exists()


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_model_files_raise_only_model_file_errors(tmp_path, saved, data):
    from fuzzcount import count_fuzz_input

    count_fuzz_input("model-file loader")
    path, _, _ = saved
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 64))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    target = tmp_path / "fuzz.npz"
    target.write_bytes(bytes(raw))
    try:
        load_model(target)
    except ModelFileError:
        pass
