"""Fixtures for the data-layer tests.

Every test runs with its own cache dir, no data dir, a mirror list pointing at a closed local
port and a failing fake ``npm`` first on PATH, so nothing can touch the real cache, the home
folder or the network by accident. Tests that need a source set it up explicitly.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from datahelpers import FileServer, Synthetic, _closed_port, write_script

from mlplab.data import fetch as fetch_mod


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MLPLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("MLPLAB_DOWNLOAD_TIMEOUT", raising=False)
    monkeypatch.setenv("MLPLAB_MIRRORS", f"http://127.0.0.1:{_closed_port()}/")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "npm", "#!/bin/sh\necho 'npm: offline in tests' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(fetch_mod, "_system_dirs", lambda spec: [])
    return tmp_path


@pytest.fixture
def synth(monkeypatch) -> Synthetic:
    """Synthetic data whose checksums replace the real ones of ``mnist`` and ``fashion-mnist``."""
    s = Synthetic()
    for name in ("mnist", "fashion-mnist"):
        spec = fetch_mod.KNOWN_DATASETS[name]
        monkeypatch.setitem(fetch_mod.KNOWN_DATASETS, name, dataclasses.replace(spec, sha256=dict(s.sha)))
    return s


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()
