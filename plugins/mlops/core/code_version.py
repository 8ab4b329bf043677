"""The code version recorded with every model: it pins the code that trained and serves it.

A clean git checkout is named by its commit. Anything else (uncommitted changes, a copy
without git) is named by the content of the code itself, ``content-<sha256>`` over every file
under ``dags/``, ``include/`` and ``plugins/``: the same code gives the same version on any machine, and
any change gives another, so a registry can tell whether two models came from the same code.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

from mlops.core.paths import PROJECT_ROOT

CODE_FOLDERS = ("dags", "include", "plugins")
SKIPPED = ("__pycache__", ".pytest_cache")


def content_digest() -> str:
    """sha256 over the relative path and bytes of every file under :data:`CODE_FOLDERS`."""
    digest = hashlib.sha256()
    for folder in CODE_FOLDERS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*")):
            if path.is_file() and not any(part in SKIPPED for part in path.parts) and path.suffix != ".pyc":
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _clean_commit() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        head = subprocess.run([git, "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        changed = subprocess.run([git, "-C", str(PROJECT_ROOT), "status", "--porcelain", "--", *CODE_FOLDERS],
                                 capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head if head and not changed else None


def code_version() -> str:
    """The commit of a clean checkout, else ``content-<sha256 of the code>``."""
    return _clean_commit() or f"content-{content_digest()}"
