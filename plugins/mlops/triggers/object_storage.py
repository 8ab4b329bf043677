"""Wait in the triggerer for files to land in the object store (``file://`` or ``s3://``)."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def list_landed_files(uri: str, pattern: str, conn_id: str | None = None) -> list[str]:
    """URIs of the files under ``uri`` (at any depth) whose path relative to ``uri`` matches the
    glob ``pattern``, sorted.

    These are the semantics of the amazon provider's ``S3KeyTrigger`` with ``wildcard_match``
    on ``<prefix>/<pattern>`` (``fnmatch`` on the key, where ``*`` also matches ``/``), so the
    ``s3://`` trigger and this listing agree on what has landed.
    """
    from mlops.core.storage import to_path

    root = to_path(uri, conn_id)
    if not root.exists():
        return []
    base = str(root).rstrip("/") + "/"
    found = []
    for path in root.rglob("*"):
        relative = str(path)[len(base):]
        if relative and fnmatch.fnmatch(relative, pattern) and path.is_file():
            found.append(str(path))
    return sorted(found)


class LandingFilesTrigger(BaseTrigger):
    """Fire once files matching ``pattern`` exist under ``uri``.

    Used for object stores the amazon provider's ``S3KeyTrigger`` does not cover (``file://``
    locally). Listing blocks (fsspec), so it runs in a thread; between listings the trigger
    sleeps ``poke_interval`` seconds. Events: ``{"status": "success", "files": [...]}``,
    ``{"status": "timeout"}`` once ``timeout`` seconds have passed (the scheduler's deferral
    timeout covers the triggerer; this one also ends an inline ``dag.test()`` run), or
    ``{"status": "error", "message": ...}``.

    :param uri: folder to watch, e.g. ``file:///data/landing/churn``.
    :param pattern: glob on the path relative to ``uri``, e.g. ``*.csv``.
    :param poke_interval: seconds between listings.
    :param timeout: seconds before a ``timeout`` event (``None``: wait for ever).
    :param conn_id: connection of the object store, if it needs one.
    """

    def __init__(self, uri: str, pattern: str, poke_interval: float = 30.0, timeout: float | None = None,
                 conn_id: str | None = None) -> None:
        super().__init__()
        self.uri = uri
        self.pattern = pattern
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.conn_id = conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"uri": self.uri, "pattern": self.pattern, "poke_interval": self.poke_interval,
             "timeout": self.timeout, "conn_id": self.conn_id},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        while True:
            try:
                files = await asyncio.to_thread(list_landed_files, self.uri, self.pattern, self.conn_id)
            except Exception as err:  # the task decides; a trigger only reports
                yield TriggerEvent({"status": "error", "message": f"listing {self.uri}: {err}"})
                return
            if files:
                yield TriggerEvent({"status": "success", "files": files})
                return
            if deadline is not None and loop.time() >= deadline:
                yield TriggerEvent({"status": "timeout", "message": f"no {self.pattern} under {self.uri} "
                                                                    f"after {self.timeout:.0f}s"})
                return
            self.log.info("no %s under %s yet; next look in %.0fs", self.pattern, self.uri, self.poke_interval)
            await asyncio.sleep(self.poke_interval if deadline is None
                                else max(0.0, min(self.poke_interval, deadline - loop.time())))
