"""Where the project's folders are, with no imports beyond the standard library: worker
processes (the batch transform's, the tuner's) find ``include/`` through this without loading
the settings and pydantic."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
INCLUDE_DIR = PROJECT_ROOT / "include"
PIPELINES_DIR = INCLUDE_DIR / "pipelines"
