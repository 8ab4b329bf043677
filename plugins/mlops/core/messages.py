"""Bounded lists of names for error messages and log lines.

A file with 5,000 unexpected columns must not produce a 45,000-character error: a message names
the count and the first few, and cuts any one very long name short.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

MAX_NAMES = 5
MAX_NAME_CHARS = 60


def name_list(names: Iterable[Any], limit: int = MAX_NAMES, *, show: Callable[[Any], str] = repr) -> str:
    """``['a', 'b']`` for at most ``limit`` names, else the first ``limit`` and the count.

    >>> name_list(["a", "b"])
    "['a', 'b']"
    >>> name_list([f"c{i}" for i in range(5000)])
    "['c0', 'c1', 'c2', 'c3', 'c4'] and 4,995 more (5,000 in all)"

    :param show: How one name is written (``repr`` by default); each is cut to
        :data:`MAX_NAME_CHARS` characters.
    """
    names = list(names)
    shown = []
    for name in names[:limit]:
        text = show(name)
        shown.append(text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 3] + "...")
    listed = f"[{', '.join(shown)}]"
    if len(names) <= limit:
        return listed
    return f"{listed} and {len(names) - limit:,} more ({len(names):,} in all)"
