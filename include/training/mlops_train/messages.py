"""Bounded lists of names for error messages: a request or a file with 5,000 columns must not
produce a 45,000-character error.

The container's copy of ``mlops.core.messages.name_list`` (the container cannot import the Airflow
plugin); ``tests/unit/test_messages.py`` checks that the copies write the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_NAMES = 5
MAX_NAME_CHARS = 60


def name_list(names: Iterable[Any], limit: int = MAX_NAMES) -> str:
    """``['a', 'b']`` for at most ``limit`` names, else the first ``limit`` and the count; each
    name's ``repr`` is cut to ``MAX_NAME_CHARS`` characters."""
    names = list(names)
    shown = [text if len(text := repr(name)) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 3] + "..."
             for name in names[:limit]]
    listed = f"[{', '.join(shown)}]"
    if len(names) <= limit:
        return listed
    return f"{listed} and {len(names) - limit:,} more ({len(names):,} in all)"
