"""IDX files (the MNIST format), raw or gzip-compressed: a strict reader and an atomic writer.

Layout of an IDX file (all integers big-endian)::

    0x00 0x00 <dtype code> <ndim>      magic number
    ndim x uint32                      size of each dimension
    prod(sizes) x itemsize bytes       the payload, C order, big-endian

The reader validates everything before trusting it: the magic, the dtype code, ``ndim``
(1..4), and the declared payload size against what the file really holds. A header that
claims more than the file can hold is refused *before* any allocation: for a raw file the
file size is known; for a gzip file the declared size is checked against the largest
size deflate can expand the compressed bytes to (1032:1), and decompression is streamed
with a cap of the declared size + 1 byte, so a gzip bomb or a lying header never makes us
allocate much more than the header's (bounded) claim.

Every error is a :class:`~mlplab.errors.DataError` (usually ``DataFormatError``) whose
one-line message starts with the file's path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from mlplab.errors import DataError, DataFormatError
from mlplab.io import atomic_write_bytes

__all__ = [
    "IDX_DTYPES",
    "MAX_IDX_BYTES",
    "read_idx",
    "read_idx_with_sha256",
    "idx_sha256",
    "parse_idx_bytes",
    "write_idx",
    "read_idx_pair",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
]

#: IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}

#: Refuse payloads larger than this (EMNIST's largest file is ~550 MB).
MAX_IDX_BYTES = 2**31
#: Deflate's maximal expansion ratio is 1032:1; a gzip file cannot decompress to more.
_DEFLATE_MAX_RATIO = 1032
_MAX_NDIM = 4
_CHUNK = 1 << 20

IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension


# --------------------------------------------------------------------------- streams
class _RawSource:
    """The bytes of an uncompressed file (its size is known up front)."""

    def __init__(self, fh: BinaryIO, size: int):
        self.fh = fh
        self.size = size

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if data is None:  # pragma: no cover - non-blocking files only
            return b""
        return data

    def finish(self) -> None:
        pass


class _GzipSource:
    """Stream-decompress a (possibly multi-member) gzip file; ``read(n)`` never exceeds n.

    CRC-32 and length of every member are checked by zlib; truncation and trailing
    garbage (anything but zero padding) after the last member are errors.
    """

    def __init__(self, fh: BinaryIO, name: str, compressed_size: int | None):
        self.fh = fh
        self.name = name
        self.size = compressed_size  # compressed size, for the 1032:1 bound
        self._d = zlib.decompressobj(wbits=31)
        self._pending = b""  # compressed input not yet given to zlib
        self._eof_input = False
        self._stream_done = False  # all members ended, rest was padding

    def _fill(self) -> None:
        if not self._pending and not self._eof_input:
            try:
                self._pending = self.fh.read(_CHUNK)
            except OSError as exc:
                raise DataError(f"{self.name}: cannot read: {exc.strerror or exc}") from None
            if not self._pending:
                self._eof_input = True

    def read(self, n: int) -> bytes:
        out: list[bytes] = []
        have = 0
        while have < n and not self._stream_done:
            if self._d.eof:
                # A member ended: what follows is another member, zero padding or garbage.
                rest = self._d.unused_data
                self._d = zlib.decompressobj(wbits=31)
                self._pending = rest + self._pending
                while len(self._pending) < 2 and not self._eof_input:  # enough to see a magic number
                    more, self._pending = self._pending, b""
                    self._fill()
                    self._pending = more + self._pending
                if not self._pending:
                    self._stream_done = True
                    break
                if self._pending[:1] == b"\x00":
                    self._check_padding()
                    break
                if self._pending[:2] != b"\x1f\x8b":  # one stray byte too
                    raise DataFormatError(
                        f"{self.name}: trailing garbage after the gzip data"
                    )
            self._fill()
            try:
                chunk = self._d.decompress(self._pending, n - have)
            except zlib.error as exc:
                raise DataFormatError(f"{self.name}: {_zlib_message(exc)}") from None
            # At a member's end everything left is in unused_data (CPython may leave a
            # stale copy in unconsumed_tail).
            self._pending = b"" if self._d.eof else self._d.unconsumed_tail
            if chunk:
                out.append(chunk)
                have += len(chunk)
            elif not self._d.eof and not self._pending and self._eof_input:
                raise DataFormatError(
                    f"{self.name}: truncated gzip file (compressed stream ends early)"
                )
        return b"".join(out)

    def _check_padding(self) -> None:
        # Like gzip.GzipFile: zero bytes after the last member are allowed (tape padding).
        while True:
            if self._pending.strip(b"\x00"):
                raise DataFormatError(f"{self.name}: trailing garbage after the gzip data")
            self._pending = b""
            self._fill()
            if not self._pending:
                self._stream_done = True
                return

    def finish(self) -> None:
        """Consume the stream to its end (so the last CRC is checked)."""
        extra = self.read(1)
        if extra:
            raise DataFormatError(
                f"{self.name}: trailing bytes after the payload declared by the IDX header"
            )


def _zlib_message(exc: zlib.error) -> str:
    text = str(exc)
    if "incorrect data check" in text:
        return "gzip CRC check failed (file is corrupt)"
    if "incorrect length check" in text:
        return "gzip length check failed (file is corrupt)"
    if "incorrect header check" in text or "unknown compression method" in text:
        return "not a valid gzip file (bad gzip header)"
    return f"corrupt gzip data ({text})"


# --------------------------------------------------------------------------- reading
def _read_exact(src: _RawSource | _GzipSource, n: int, name: str, what: str) -> bytes:
    data = src.read(n)
    if len(data) != n:
        raise DataFormatError(
            f"{name}: file too short: {what} needs {n} bytes, only {len(data)} present"
        )
    return data


def _parse(
    src: _RawSource | _GzipSource,
    name: str,
    *,
    compressed: bool,
    hasher=None,
    max_bytes: int | None = None,
) -> np.ndarray:
    limit = MAX_IDX_BYTES if max_bytes is None else int(max_bytes)
    head = src.read(4)
    if len(head) == 0:
        raise DataFormatError(f"{name}: empty file (no IDX header)")
    if len(head) < 4:
        raise DataFormatError(f"{name}: file too short for an IDX header ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        hint = ""
        if not compressed and head[:2] == b"\x1f\x8b":
            hint = " (it looks gzip-compressed; name it *.gz)"
        raise DataFormatError(
            f"{name}: not an IDX file: magic must start with two zero bytes, "
            f"got 0x{head.hex()}{hint}"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise DataFormatError(
            f"{name}: unknown IDX dtype code 0x{code:02X} "
            "(valid: 0x08 0x09 0x0B 0x0C 0x0D 0x0E)"
        )
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataFormatError(f"{name}: IDX header declares {ndim} dimensions (must be 1..{_MAX_NDIM})")
    dims_raw = _read_exact(src, 4 * ndim, name, f"the header's {ndim} dimension sizes")
    dims = tuple(int(v) for v in np.frombuffer(dims_raw, dtype=">u4"))
    dtype = IDX_DTYPES[code]
    n_items = 1
    for d in dims:
        n_items *= d
    payload = n_items * dtype.itemsize  # exact Python int: no overflow
    header_len = 4 + 4 * ndim
    shape_txt = "x".join(str(d) for d in dims)
    if payload > limit:
        raise DataFormatError(
            f"{name}: IDX header declares a {shape_txt} array of {payload} bytes, "
            f"more than the {limit}-byte limit"
        )
    nonzero = 1
    for d in dims:
        nonzero *= max(d, 1)
    if nonzero * dtype.itemsize > limit:  # an empty array with absurd other dimensions
        raise DataFormatError(
            f"{name}: IDX header declares implausible dimensions {shape_txt} "
            f"(more than the {limit}-byte limit even ignoring the zero size)"
        )
    if compressed:
        if src.size is not None:
            most = src.size * _DEFLATE_MAX_RATIO
            if header_len + payload > most:
                raise DataFormatError(
                    f"{name}: IDX header declares {payload} payload bytes ({shape_txt}), more "
                    f"than {src.size} compressed bytes can hold (truncated or corrupt file)"
                )
    else:
        actual = src.size - header_len
        if actual < payload:
            raise DataFormatError(
                f"{name}: truncated: IDX header declares {payload} payload bytes "
                f"({shape_txt} x {dtype.itemsize}), file holds only {actual}"
            )
        if actual > payload:
            raise DataFormatError(
                f"{name}: {actual - payload} trailing bytes after the payload "
                f"declared by the IDX header ({shape_txt})"
            )
    body = src.read(payload)
    if len(body) != payload:
        raise DataFormatError(
            f"{name}: truncated: IDX header declares {payload} payload bytes "
            f"({shape_txt}), file holds only {len(body)}"
        )
    src.finish()
    if not compressed:
        extra = src.read(1)
        if extra:  # the file grew while we read it
            raise DataFormatError(f"{name}: trailing bytes after the IDX payload")
    if hasher is not None:
        hasher.update(head)
        hasher.update(dims_raw)
        hasher.update(body)
    arr = np.frombuffer(body, dtype=dtype).reshape(dims)
    native = dtype.newbyteorder("=")
    # uint8/int8 have no byte order: copy once so the array is writable and owns its memory.
    return arr.astype(native, copy=True)


_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX only (Windows has no FIFOs to open)


def _open_nonblocking(name: str, flags: int) -> int:
    return os.open(name, flags | _O_NONBLOCK)


def _open(path: str | os.PathLike) -> tuple[BinaryIO, int, str]:
    """Open a regular file for reading. It is opened non-blocking, so a FIFO where an IDX file
    should be is refused by the ``fstat`` check below instead of waiting for a writer forever."""
    name = os.fspath(path)
    try:
        fh = open(name, "rb", opener=_open_nonblocking)
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, not a file") from None
    except PermissionError:
        raise DataError(f"{name}: permission denied (file is not readable)") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fh.fileno())
        if _O_NONBLOCK and stat.S_ISREG(st.st_mode):
            os.set_blocking(fh.fileno(), True)
    except OSError as exc:  # pragma: no cover
        fh.close()
        raise DataError(f"{name}: cannot stat: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):  # pragma: no cover - open() already refuses on Linux
        fh.close()
        raise DataError(f"{name}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        raise DataError(f"{name}: not a regular file")
    return fh, st.st_size, name


def _read_stream(
    fh: BinaryIO, size: int, name: str, gz: bool | None, hasher, max_bytes: int | None
) -> np.ndarray:
    magic = fh.read(2)
    fh.seek(0)
    is_gzip = magic == b"\x1f\x8b"
    if gz and not is_gzip:
        if size == 0:
            raise DataFormatError(f"{name}: empty file (not gzip data)")
        raise DataFormatError(f"{name}: not a gzip file (name ends in .gz, content does not start with 1f 8b)")
    if is_gzip and gz is not False:
        src: _RawSource | _GzipSource = _GzipSource(fh, name, size)
        return _parse(src, name, compressed=True, hasher=hasher, max_bytes=max_bytes)
    return _parse(_RawSource(fh, size), name, compressed=False, hasher=hasher, max_bytes=max_bytes)


def read_idx(path: str | os.PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (``*.gz`` or raw) into a native-endian array of its declared shape.

    A file whose name ends in ``.gz`` must be gzip data; a raw-named file that is gzip data
    is decompressed too. Raises :class:`DataError`/:class:`DataFormatError` naming ``path``.
    """
    return _read_path(path, None, max_bytes)


def read_idx_with_sha256(path: str | os.PathLike, *, max_bytes: int | None = None) -> tuple[np.ndarray, str]:
    """Like :func:`read_idx`, also returning the SHA-256 of the *decompressed* IDX bytes.

    The file is decompressed once; the same bytes are hashed and parsed.
    """
    h = hashlib.sha256()
    arr = _read_path(path, h, max_bytes)
    return arr, h.hexdigest()


def idx_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of an IDX file's decompressed bytes, as :func:`read_idx_with_sha256` gives it,
    streamed: nothing is parsed or kept, so it is a cheap way to recognise a known file. Only the
    gzip stream is checked; a file whose hash this gives may still fail to read."""
    with _reading(path) as (fh, size, name):
        gzipped = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        src = _GzipSource(fh, name, size) if gzipped else _RawSource(fh, size)
        h = hashlib.sha256()
        total = 0
        while chunk := src.read(_CHUNK):
            total += len(chunk)
            if total > MAX_IDX_BYTES + 4 + 4 * _MAX_NDIM:  # a gzip bomb: no IDX file is this large
                raise DataFormatError(f"{name}: holds more than the {MAX_IDX_BYTES}-byte limit")
            h.update(chunk)
        return h.hexdigest()


def _read_path(path, hasher, max_bytes) -> np.ndarray:
    with _reading(path) as (fh, size, name):
        gz = True if name.endswith(".gz") else None
        return _read_stream(fh, size, name, gz, hasher, max_bytes)


@contextmanager
def _reading(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, int, str]]:
    """:func:`_open` ``path``; read errors become a :class:`DataError` naming it; closed after."""
    fh, size, name = _open(path)
    try:
        yield fh, size, name
    except (OSError, EOFError) as exc:
        raise DataError(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        fh.close()


def parse_idx_bytes(
    data: bytes, name: str = "<bytes>", *, gz: bool | None = None, max_bytes: int | None = None
) -> tuple[np.ndarray, str]:
    """Parse IDX content held in memory (raw or gzip); return the array and the SHA-256
    of the decompressed bytes. ``name`` is used in error messages."""
    h = hashlib.sha256()
    arr = _read_stream(io.BytesIO(data), len(data), name, gz, h, max_bytes)
    return arr, h.hexdigest()


# --------------------------------------------------------------------------- writing
def idx_bytes(array: np.ndarray, name: str = "<array>") -> bytes:
    """The uncompressed IDX encoding of ``array`` (big-endian payload)."""
    arr = np.asarray(array)
    code = _CODE_OF_KIND.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise DataFormatError(
            f"{name}: cannot write dtype {arr.dtype} as IDX "
            "(supported: uint8, int8, int16, int32, float32, float64)"
        )
    if not 1 <= arr.ndim <= _MAX_NDIM:
        raise DataFormatError(f"{name}: cannot write a {arr.ndim}-dimensional array as IDX (1..{_MAX_NDIM})")
    if any(d >= 2**32 for d in arr.shape):
        raise DataFormatError(f"{name}: a dimension of shape {arr.shape} does not fit in 32 bits")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically; gzip it when ``compress`` is true
    (default: when the name ends in ``.gz``). The gzip stream is deterministic (mtime 0)."""
    name = os.fspath(path)
    data = idx_bytes(array, name)
    if compress is None:
        compress = name.endswith(".gz")
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return atomic_write_bytes(name, data)


# --------------------------------------------------------------------------- pairs
def _magic_of(arr: np.ndarray) -> int:
    code = _CODE_OF_KIND.get((arr.dtype.kind, arr.dtype.itemsize), 0)
    return (code << 8) | arr.ndim


def check_pair(
    images: np.ndarray,
    labels: np.ndarray,
    images_name: str,
    labels_name: str,
    n_classes: int = 10,
    image_shape: tuple[int, ...] | None = (28, 28),
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (images, labels) pair read from IDX files; return (uint8 images, int64 labels)."""
    im_magic, lb_magic = _magic_of(images), _magic_of(labels)
    if im_magic == LABELS_MAGIC and lb_magic == IMAGES_MAGIC:
        raise DataFormatError(
            f"{images_name}: holds labels (magic 2049) and {labels_name} holds images "
            "(magic 2051): images and labels files are swapped"
        )
    if im_magic != IMAGES_MAGIC:
        raise DataFormatError(
            f"{images_name}: not an images file: expected magic 2051 (uint8, 3-D), got {im_magic} "
            f"({images.dtype}, {images.ndim}-D, shape {images.shape})"
        )
    if lb_magic != LABELS_MAGIC:
        raise DataFormatError(
            f"{labels_name}: not a labels file: expected magic 2049 (uint8, 1-D), got {lb_magic} "
            f"({labels.dtype}, {labels.ndim}-D, shape {labels.shape})"
        )
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise DataFormatError(
            f"{images_name}: images are {images.shape[1]}x{images.shape[2]}, expected "
            f"{'x'.join(map(str, image_shape))}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"{images_name}: holds {images.shape[0]} images but {labels_name} holds "
            f"{labels.shape[0]} labels"
        )
    if images.shape[0] == 0:
        raise DataFormatError(f"{images_name}: holds no images")
    if labels.size and int(labels.max()) >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise DataFormatError(
            f"{labels_name}: label {int(labels[bad])} at index {bad} is outside [0, {n_classes})"
        )
    return images, labels.astype(np.int64)


def read_idx_pair(
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    n_classes: int = 10,
    image_shape: tuple[int, ...] | None = (28, 28),
) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check an images file (magic 2051) and a labels file (magic 2049).

    Returns ``images`` of shape ``(n, 28, 28)`` uint8 and ``labels`` of shape ``(n,)`` int64.
    Swapped files, count mismatches, wrong dimensions and labels outside ``[0, n_classes)``
    raise :class:`DataFormatError` naming the file.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    return check_pair(
        images, labels, os.fspath(images_path), os.fspath(labels_path), n_classes, image_shape
    )
