"""Helpers for the data-layer tests (a uniquely named module: several conftest.py exist)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from mlplab.data import fetch as fetch_mod
from mlplab.data.idx import idx_bytes

#: The real data dir (MNIST lives in <it>/mnist), read before any test changes the env.
REAL_DATA_DIR = os.environ.get("MLPLAB_DATA_DIR")

NAMES = fetch_mod.FILENAMES  # key -> standard file name
#: The unpatched system-folder finder (conftest replaces it for every test).
REAL_SYSTEM_DIRS = fetch_mod._system_dirs


def real_mnist_dir() -> Path:
    """``$MLPLAB_DATA_DIR`` if it holds MNIST, else skip the calling test."""
    if not REAL_DATA_DIR:
        pytest.skip("MLPLAB_DATA_DIR is not set (point it at the folder holding mnist/ to run real-MNIST tests)")
    d = Path(REAL_DATA_DIR)
    if not (d / "mnist" / "train-images-idx3-ubyte.gz").exists() and not (d / "mnist" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"MLPLAB_DATA_DIR={d} holds no mnist/ folder with the IDX files")
    return d


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once we leave: connections are refused


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class Synthetic:
    """A tiny MNIST-shaped dataset (28x28 uint8) with its raw IDX bytes and checksums."""

    def __init__(self, n_train: int = 30, n_test: int = 10, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.arrays = {
            "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train_labels": ((np.arange(n_train) + seed) % 10).astype(np.uint8),
            "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "test_labels": ((np.arange(n_test) + seed) % 10).astype(np.uint8),
        }
        self.raw = {k: idx_bytes(a) for k, a in self.arrays.items()}
        self.gz = {k: gzip.compress(b, mtime=0) for k, b in self.raw.items()}
        self.sha = {k: hashlib.sha256(b).hexdigest() for k, b in self.raw.items()}

    def write(self, folder: Path, compress: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for k in self.raw:
            if compress:
                (folder / (NAMES[k] + ".gz")).write_bytes(self.gz[k])
            else:
                (folder / NAMES[k]).write_bytes(self.raw[k])
        return folder


class FileServer:
    """A local HTTP server in a thread: ``routes`` maps a path to bytes or a behaviour."""

    def __init__(self):
        self.routes: dict[str, object] = {}
        self.hits: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.hits.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if body == "hang":  # accept, never answer (until the test ends, or 60 s)
                    server.release.wait(60)
                    return
                if isinstance(body, tuple) and body[0] == "short":  # announce more than sent
                    data = body[1]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data) * 2))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def serve(self, prefix: str, files: dict[str, object]) -> str:
        """Serve ``files`` (file name -> body) under ``prefix``; return that base URL."""
        for fname, body in files.items():
            self.routes[f"/{prefix}/{fname}"] = body
        return f"{self.base}/{prefix}/"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
