"""Shared fixtures: every test gets its own MLOPS_HOME (data root, registry, runtime)."""

from __future__ import annotations

import os
import tempfile

import pytest

from testkit.net import free_port

# Before anything imports Airflow: tests never touch a real AIRFLOW_HOME or MLOPS_HOME.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp(prefix="mlops-home-"))


@pytest.fixture
def mlops_home(tmp_path, monkeypatch):
    """A fresh local MLOPS_HOME under tmp_path, on the local backend, with a free runtime port."""
    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_BACKEND", "local")
    monkeypatch.delenv("MLOPS_DATA_URI", raising=False)
    monkeypatch.setenv("MLOPS_RUNTIME_PORT", str(free_port()))
    return home
