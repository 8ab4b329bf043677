"""Shared fixtures: every test gets its own MLOPS_HOME (data root, registry, runtime)."""

from __future__ import annotations

import socket

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlops_home(tmp_path, monkeypatch):
    """A fresh local MLOPS_HOME under tmp_path, on the local backend, with a free runtime port."""
    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_BACKEND", "local")
    monkeypatch.delenv("MLOPS_DATA_URI", raising=False)
    monkeypatch.setenv("MLOPS_RUNTIME_PORT", str(free_port()))
    return home
