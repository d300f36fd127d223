"""IDX reader/writer: round trips, every malformed input as a one-line error naming the file,
huge headers refused without allocation, and a fuzz where only DataError escapes."""

from __future__ import annotations

import gzip
import os
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplab.data import idx as idx_mod
from mlplab.data.idx import (
    idx_bytes,
    parse_idx_bytes,
    read_idx,
    read_idx_pair,
    read_idx_with_sha256,
    write_idx,
)
from mlplab.errors import DataError, DataFormatError


def header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)


def assert_one_line(exc: BaseException, path, *words: str) -> None:
    msg = str(exc)
    assert "\n" not in msg
    assert msg.startswith(str(path)), msg
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.flags.writeable and back.flags.c_contiguous
    np.testing.assert_array_equal(back, arr)


def test_compress_flag_overrides_suffix_and_gzip_is_deterministic(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a", arr, compress=True)
    write_idx(tmp_path / "b", arr, compress=True)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), arr)  # gzip content detected
    write_idx(tmp_path / "c.gz", arr, compress=False)
    with pytest.raises(DataFormatError, match="not a gzip file"):
        read_idx(tmp_path / "c.gz")


def test_big_endian_payload_converted(tmp_path):
    p = tmp_path / "be.idx"
    p.write_bytes(header(0x0C, (3,)) + struct.pack(">iii", 1, -2, 70000))
    a = read_idx(p)
    assert a.dtype == np.int32 and a.dtype.isnative
    assert a.tolist() == [1, -2, 70000]
    p.write_bytes(header(0x0D, (2,)) + struct.pack(">ff", 1.5, -0.25))
    assert read_idx(p).tolist() == [1.5, -0.25]


def test_sha256_is_of_decompressed_bytes(tmp_path):
    import hashlib

    arr = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "x.gz", arr)
    write_idx(tmp_path / "x", arr)
    _, h1 = read_idx_with_sha256(tmp_path / "x.gz")
    _, h2 = read_idx_with_sha256(tmp_path / "x")
    assert h1 == h2 == hashlib.sha256(idx_bytes(arr)).hexdigest()
    # Another gzip of the same data (other level, multi-member, zero padding) passes too.
    raw = idx_bytes(arr)
    (tmp_path / "y.gz").write_bytes(gzip.compress(raw[:7], 1) + gzip.compress(raw[7:], 9) + b"\0" * 16)
    assert read_idx_with_sha256(tmp_path / "y.gz")[1] == h1


def test_write_refuses_unsupported(tmp_path):
    with pytest.raises(DataFormatError, match="cannot write dtype int64"):
        write_idx(tmp_path / "x", np.arange(3))
    with pytest.raises(DataFormatError, match="5-dimensional"):
        write_idx(tmp_path / "x", np.zeros((1, 1, 1, 1, 1), np.uint8))
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    with pytest.raises(DataError) as e:
        read_idx(tmp_path / "nope.gz")
    assert_one_line(e.value, tmp_path / "nope.gz", "not found")


def test_directory_instead_of_file(tmp_path):
    d = tmp_path / "dir.gz"
    d.mkdir()
    with pytest.raises(DataError) as e:
        read_idx(d)
    assert_one_line(e.value, d, "directory")


@pytest.mark.parametrize("name", ["empty", "empty.gz"])
def test_empty_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "empty")


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    p = tmp_path / "x.gz"
    write_idx(p, np.zeros(3, np.uint8))

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(idx_mod, "open", deny, raising=False)
    with pytest.raises(DataError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "permission denied")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read a mode-000 file")
def test_unreadable_file_chmod(tmp_path):
    p = tmp_path / "x.gz"
    write_idx(p, np.zeros(3, np.uint8))
    p.chmod(0)
    try:
        with pytest.raises(DataError) as e:
            read_idx(p)
        assert_one_line(e.value, p, "permission denied")
    finally:
        p.chmod(0o644)


def test_not_gzip_named_gz(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "not a gzip file")


def test_truncated_gzip(tmp_path):
    p = tmp_path / "x.gz"
    data = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 255, 5000).astype(np.uint8)))
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "truncated")
    p.write_bytes(data[:-4])  # only the length field is missing
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "truncated")


def test_gzip_crc_error(tmp_path):
    p = tmp_path / "x.gz"
    data = bytearray(gzip.compress(idx_bytes(np.arange(50, dtype=np.uint8))))
    data[-8] ^= 0xFF  # first byte of the CRC-32 trailer
    p.write_bytes(bytes(data))
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "crc")


@pytest.mark.parametrize("tail", [b"garbage!", b"x", b"\x1f"])  # one stray byte was "truncated"
def test_trailing_garbage_after_gzip(tmp_path, tail):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.arange(5, dtype=np.uint8))) + tail)
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "trailing garbage")


@pytest.mark.parametrize("compress", [False, True])
def test_wrong_magic(tmp_path, compress):
    p = tmp_path / ("x.gz" if compress else "x")
    write_idx(p, np.zeros(4, np.uint8))
    raw = b"\x01\x02" + idx_bytes(np.zeros(4, np.uint8))[2:]
    p.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "magic")


@pytest.mark.parametrize(
    "head, words",
    [
        (bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\0", ["dtype code 0x07"]),
        (bytes([0, 0, 0x08, 0]), ["0 dimensions"]),
        (bytes([0, 0, 0x08, 5]) + b"\0" * 20, ["5 dimensions"]),
        (bytes([0, 0, 0x08, 3]) + b"\0\0\0\1", ["too short", "dimension sizes"]),
        (bytes([0, 0, 8]), ["too short for an idx header"]),
    ],
)
def test_bad_header(tmp_path, head, words):
    p = tmp_path / "x"
    p.write_bytes(head)
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, *words)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(tmp_path, compress):
    p = tmp_path / ("x.gz" if compress else "x")
    raw = header(0x08, (10, 28, 28)) + b"\1" * (9 * 784)
    p.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "truncated")


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_bytes(tmp_path, compress):
    p = tmp_path / ("x.gz" if compress else "x")
    raw = idx_bytes(np.zeros(10, np.uint8)) + b"\0\0\0"
    p.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DataFormatError) as e:
        read_idx(p)
    assert_one_line(e.value, p, "trailing bytes")


def test_raw_named_file_that_is_gzip_is_read(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(gzip.compress(idx_bytes(np.arange(3, dtype=np.uint8))))
    assert read_idx(p).tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- huge headers
def _quick_and_small(fn) -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DataFormatError):
            fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a guard against a hang (reading or decompressing what the header claims), not a speed
    # check: a refusal takes milliseconds, and the bound is generous for a loaded machine
    assert time.perf_counter() - t0 < 30
    assert peak < 4 * 2**20, peak  # bytes


def test_huge_header_raw_refused_without_allocation(tmp_path):
    p = tmp_path / "huge"
    p.write_bytes(header(0x0E, (0xFFFFFFFF,) * 4) + b"\0" * 64)
    _quick_and_small(lambda: read_idx(p))
    p.write_bytes(header(0x08, (1_000_000, 28, 28)) + b"\0" * 100)  # 784 MB claimed, under the cap
    _quick_and_small(lambda: read_idx(p))
    with pytest.raises(DataFormatError, match=r"^.*huge: truncated: IDX header declares 784000000"):
        read_idx(p)


def test_huge_header_gzip_refused_without_allocation(tmp_path):
    p = tmp_path / "huge.gz"
    p.write_bytes(gzip.compress(header(0x08, (1_000_000, 28, 28)) + b"\0" * 100))
    _quick_and_small(lambda: read_idx(p))  # 784 MB cannot come out of ~150 compressed bytes
    with pytest.raises(DataFormatError, match="compressed bytes can hold"):
        read_idx(p)
    p.write_bytes(gzip.compress(header(0x0E, (0xFFFFFFFF,) * 4)))
    _quick_and_small(lambda: read_idx(p))


def test_gzip_bomb_with_small_header_stops_at_cap(tmp_path):
    # 64 MB of zeros compressed to ~64 KB behind a header that declares 1,000 bytes.
    p = tmp_path / "bomb.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(header(0x08, (1000,)))]
    block = b"\0" * (1 << 20)
    for _ in range(64):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    p.write_bytes(b"".join(parts))
    _quick_and_small(lambda: read_idx(p))
    with pytest.raises(DataFormatError, match="trailing bytes"):
        read_idx(p)


def test_max_bytes_limit(tmp_path):
    p = tmp_path / "x.gz"
    write_idx(p, np.zeros((100, 28, 28), np.uint8))
    with pytest.raises(DataFormatError, match="limit"):
        read_idx(p, max_bytes=1000)
    assert read_idx(p, max_bytes=78400).shape == (100, 28, 28)


# --------------------------------------------------------------------------- pairs
def _pair(tmp_path, images, labels):
    ip, lp = tmp_path / "img.gz", tmp_path / "lab.gz"
    write_idx(ip, images)
    write_idx(lp, labels)
    return ip, lp


def test_pair_ok(tmp_path):
    ip, lp = _pair(tmp_path, np.zeros((5, 28, 28), np.uint8), np.arange(5, dtype=np.uint8))
    X, y = read_idx_pair(ip, lp)
    assert X.shape == (5, 28, 28) and X.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3, 4]


def test_pair_swapped(tmp_path):
    ip, lp = _pair(tmp_path, np.zeros((5, 28, 28), np.uint8), np.arange(5, dtype=np.uint8))
    with pytest.raises(DataFormatError) as e:
        read_idx_pair(lp, ip)
    assert_one_line(e.value, lp, "swapped")


def test_pair_count_mismatch(tmp_path):
    ip, lp = _pair(tmp_path, np.zeros((5, 28, 28), np.uint8), np.arange(4, dtype=np.uint8))
    with pytest.raises(DataFormatError) as e:
        read_idx_pair(ip, lp)
    assert_one_line(e.value, ip, "5 images", "4 labels")


def test_pair_wrong_dimensions(tmp_path):
    ip, lp = _pair(tmp_path, np.zeros((5, 10, 10), np.uint8), np.arange(5, dtype=np.uint8))
    with pytest.raises(DataFormatError) as e:
        read_idx_pair(ip, lp)
    assert_one_line(e.value, ip, "10x10", "28x28")
    ip, lp = _pair(tmp_path, np.zeros((5, 784), np.uint8), np.arange(5, dtype=np.uint8))
    with pytest.raises(DataFormatError) as e:
        read_idx_pair(ip, lp)
    assert_one_line(e.value, ip, "not an images file", "2051")
    ip, lp = _pair(tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros((5, 1), np.uint8))
    with pytest.raises(DataFormatError) as e:
        read_idx_pair(ip, lp)
    assert_one_line(e.value, lp, "not a labels file", "2049")
    ip, lp = _pair(tmp_path, np.zeros((5, 28, 28), np.float32), np.arange(5, dtype=np.uint8))
    with pytest.raises(DataFormatError) as e:
        read_idx_pair(ip, lp)
    assert_one_line(e.value, ip, "not an images file")


def test_pair_label_out_of_range(tmp_path):
    ip, lp = _pair(tmp_path, np.zeros((3, 28, 28), np.uint8), np.array([0, 10, 3], np.uint8))
    with pytest.raises(DataFormatError) as e:
        read_idx_pair(ip, lp)
    assert_one_line(e.value, lp, "label 10 at index 1", "[0, 10)")
    X, y = read_idx_pair(ip, lp, n_classes=11)
    assert y.tolist() == [0, 10, 3]


# --------------------------------------------------------------------------- fuzz
_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]


@st.composite
def idx_like(draw):
    kind = draw(st.sampled_from(["random", "mutated", "mutated", "header_only"]))
    if kind == "random":
        data = draw(st.binary(max_size=200))
    else:
        code = draw(st.sampled_from(_CODES))
        dims = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
        itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[code]
        n = int(np.prod(dims)) * itemsize
        data = bytearray(header(code, tuple(dims)) + draw(st.binary(min_size=n, max_size=n)))
        if kind == "header_only":
            # A header with arbitrary (possibly huge) sizes over a short payload.
            big = draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4))
            data = bytearray(header(code, tuple(big)) + draw(st.binary(max_size=64)))
        for _ in range(draw(st.integers(0, 3))):
            op = draw(st.sampled_from(["flip", "cut", "add", "set"]))
            if op == "flip" and data:
                i = draw(st.integers(0, len(data) - 1))
                data[i] ^= 1 << draw(st.integers(0, 7))
            elif op == "cut" and data:
                del data[draw(st.integers(0, len(data) - 1)):]
            elif op == "add":
                data += draw(st.binary(min_size=1, max_size=8))
            elif op == "set" and data:
                data[draw(st.integers(0, min(len(data) - 1, 11)))] = draw(st.integers(0, 255))
        data = bytes(data)
    if draw(st.booleans()):
        gz = gzip.compress(data, compresslevel=1, mtime=0)
        if draw(st.booleans()):  # corrupt the gzip stream itself
            b = bytearray(gz)
            op = draw(st.sampled_from(["flip", "cut", "add"]))
            if op == "flip":
                i = draw(st.integers(0, len(b) - 1))
                b[i] ^= 1 << draw(st.integers(0, 7))
            elif op == "cut":
                del b[draw(st.integers(0, len(b) - 1)):]
            else:
                b += draw(st.binary(min_size=1, max_size=8))
            gz = bytes(b)
        return gz, True
    return data, draw(st.sampled_from([None, False]))


@settings(max_examples=5000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(idx_like())
def test_fuzz_only_data_errors_escape(case):
    from fuzzcount import count_fuzz_input

    count_fuzz_input("IDX reader")
    data, gz = case
    try:
        arr, sha = parse_idx_bytes(data, "fuzz.idx", gz=gz)
    except DataError as exc:
        msg = str(exc)
        assert msg.startswith("fuzz.idx: ") and "\n" not in msg
        return
    assert isinstance(arr, np.ndarray) and 1 <= arr.ndim <= 4 and arr.dtype.isnative
    assert len(sha) == 64
