"""A real local model runtime process for tests that talk to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mlops.backends.local.hosting import LocalHosting
from mlops.core.settings import Settings
from testkit.net import free_port


def flip_a_byte(uri: str) -> None:
    """Invert the middle byte of the ``file://`` artifact at ``uri`` (a tampered copy)."""
    path = Path(uri.removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


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
        hosting.stop_runtime()
