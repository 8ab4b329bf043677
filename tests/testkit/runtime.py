"""A real local model runtime process for tests that talk to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mlops.backends.local.hosting import LocalHosting
from mlops.settings import Settings
from testkit.net import free_port


@contextlib.contextmanager
def running_runtime(home: Path) -> Iterator[LocalHosting]:
    """Start a runtime on a free loopback port with its state under ``home``; stop it after."""
    settings = Settings(backend="local", home=home, data_uri=(home / "data").as_uri(), aws_conn_id="aws_default",
                        runtime_port=free_port())
    hosting = LocalHosting(settings)
    try:
        hosting.ensure_running()
        yield hosting
    finally:
        hosting.stop()
