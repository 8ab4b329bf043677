"""Values as they appear in reports and messages: JSON-safe, distinct, and bounded lists."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_OFFENDING_VALUES = 5


def json_safe(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        try:  # numpy and pandas scalars
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)


def distinct(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in map(json_safe, values):
        if value not in seen:
            seen.append(value)
        if len(seen) == MAX_OFFENDING_VALUES:
            break
    return seen


def format_values(values: Sequence[Any], limit: int = MAX_OFFENDING_VALUES) -> str:
    shown = ", ".join("null" if v is None else repr(v) for v in list(values)[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"

