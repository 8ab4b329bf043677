"""A real full disk for tests: a size-limited tmpfs mounted on a folder, filled up, then freed.

``mount -t tmpfs -o size=...`` needs root (CAP_SYS_ADMIN), which containers and CI runners
usually lack: then :func:`size_limited_tmpfs` skips the test, saying so. A write to a full tmpfs
fails with ``ENOSPC`` ("No space left on device") at the ``write()`` that needs a new page, as a
full disk does. :func:`fill_up` takes every free byte with one hidden file (``.disk-filler``,
which the project's readers skip as they skip every name starting with ``.``); removing it frees
the space again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = ".disk-filler"


def _mount_refused(folder: Path, size: str) -> str | None:
    """Mount the tmpfs; the reason when that is refused here, None once mounted."""
    mount = shutil.which("mount")
    if mount is None or shutil.which("umount") is None:
        return "no mount and umount commands on this machine"
    if os.geteuid() != 0:
        return f"mount -t tmpfs needs root (CAP_SYS_ADMIN); this test runs as uid {os.geteuid()}"
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return (f"mount -t tmpfs was refused ({done.stderr.strip()[:300] or f'exit {done.returncode}'}): it needs "
                "root with CAP_SYS_ADMIN, which containers and CI runners usually lack")
    return None


@contextlib.contextmanager
def size_limited_tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount``'s units: ``1m``, ``16m``) mounted on ``folder`` (made when
    missing; what it held is hidden while mounted); unmounted after. Skips the test, naming the
    reason, where mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    refused = _mount_refused(folder, size)
    if refused:
        pytest.skip(f"needs a size-limited tmpfs for a real full disk: {refused}")
    try:
        yield folder
    finally:
        umount = shutil.which("umount") or "/bin/umount"
        done = subprocess.run([umount, str(folder)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:  # a process still holds a file there: detach now, freed when it lets go
            subprocess.run([umount, "-l", str(folder)], capture_output=True, text=True, timeout=60)


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill_up(folder: Path) -> Path:
    """Take every free byte of ``folder``'s filesystem with one hidden file; returns its path.
    The next write there that needs space fails with ``ENOSPC``."""
    filler = folder / FILLER
    with filler.open("ab", buffering=0) as handle:
        for size in (1 << 20, 1 << 12, 1):  # big blocks first, then what is left of the last page
            block = b"\0" * size
            try:
                while handle.write(block):
                    pass
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    return filler


def free_up(folder: Path) -> None:
    """Remove what :func:`fill_up` took."""
    (folder / FILLER).unlink(missing_ok=True)
