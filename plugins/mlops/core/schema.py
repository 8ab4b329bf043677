"""Typed checking of settings and configs with pydantic, and error messages a user can act on.

Every environment variable and every pipeline-config key is checked by a pydantic model or type
(:mod:`mlops.core.settings`, :mod:`mlops.core.config_schema`). :func:`describe` turns pydantic's
:class:`~pydantic.ValidationError` into one bounded message that names each bad key (or
variable) and its value: at most :data:`MAX_ERRORS` problems, values cut to
:data:`MAX_VALUE_CHARS` characters, whatever the input was.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

TcpPort = Annotated[int, Field(gt=0, lt=65536)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
MAX_ERRORS = 5
MAX_VALUE_CHARS = 80
MAX_KEYS_LISTED = 12
MAX_NAME_CHARS = 60


def shown(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters (with ``...``)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def listed(names: Any, limit: int = MAX_KEYS_LISTED) -> str:
    """``a, b, c`` for at most ``limit`` names, then ``... (N in all)``."""
    names = [_cut(str(name)) for name in names]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all)"


def dotted(loc: tuple[Any, ...]) -> str:
    """``("endpoint", "prod", "traffic_shifting")`` -> ``endpoint.prod.traffic_shifting``
    (list positions as ``[0]``)."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{_cut(str(part))}" if text else _cut(str(part)))
    return text


def _cut(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """A key as written, cut to ``limit`` characters (a key is user input too)."""
    return name if len(name) <= limit else name[: limit - 3] + "..."


def _message(error: dict[str, Any]) -> str:
    kind, ctx, message = error["type"], error.get("ctx") or {}, error["msg"]
    if kind == "value_error":
        return str(ctx.get("error", message.removeprefix("Value error, ")))
    if kind == "assertion_error":
        return message.removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping, got {type(error['input']).__name__}"
    if kind == "literal_error":
        return f"is not one of {str(ctx.get('expected', '')).replace(' or ', ', ').replace(chr(39), '')}"
    return message[:1].lower() + message[1:]


def describe(error: ValidationError, where: str = "", *, root: str = "", with_values: bool = True) -> str:
    """One message for every problem in ``error``: ``<where><key>=<value> <what is wrong>``;
    missing keys, and unknown keys of one mapping, listed together; at most :data:`MAX_ERRORS`
    problems and each value cut to :data:`MAX_VALUE_CHARS` characters. Mappings are not shown
    (only their type).

    :param where: prefix naming the file or section (``"churn.yaml: "``), may be empty.
    :param root: the dotted key of what was validated, put in front of every key.
    :param with_values: ``False`` leaves values out (a secret may be among them).
    """
    errors = [{**e, "loc": ((root,) if root else ()) + tuple(e["loc"])} for e in error.errors(include_url=False)]
    missing = [dotted(e["loc"]) for e in errors if e["type"] == "missing"]
    unknown: dict[str, list[str]] = {}
    for item in errors:
        if item["type"] == "extra_forbidden":
            unknown.setdefault(dotted(item["loc"][:-1]), []).append(str(item["loc"][-1]))
    problems = []
    if missing:
        problems.append(f"missing required keys: {listed(missing)}")
    for parent, keys in unknown.items():
        problems.append(f"{parent + ': ' if parent else ''}unknown key(s) {listed(keys)}")
    for item in errors:
        if item["type"] in ("missing", "extra_forbidden"):
            continue
        key, message = dotted(item["loc"]), _message(item)
        value = item["input"]
        if with_values and not isinstance(value, dict) and item["type"] not in ("dict_type", "model_type"):
            key = f"{key}={shown(value)}" if key else shown(value)
        joint = " " if message.startswith(("is ", "must ", "needs ")) else ": "
        problems.append(f"{key}{joint}{message}" if key else message)
    more = len(problems) - MAX_ERRORS
    text = "; ".join(problems[:MAX_ERRORS]) + (f"; and {more} more" if more > 0 else "")
    return f"{where}{text}"


def env_value(variable: str, annotation: Any, default: Any, environ: Any = None) -> Any:
    """The environment variable ``variable`` as ``annotation`` (a type, ``Annotated`` with
    constraints, or a ``Literal``); ``default`` when it is unset or blank.

    :raises ValueError: ``<variable>=<value>: <what is wrong>``, bounded.
    """
    import os

    text = (os.environ if environ is None else environ).get(variable, "").strip()
    if not text:
        return default
    try:
        return TypeAdapter(annotation).validate_python(text)
    except ValidationError as err:
        detail = "; ".join(_message(e) for e in err.errors(include_url=False)[:MAX_ERRORS])
        joint = " " if detail.startswith(("is ", "must ", "needs ")) else ": "
        raise ValueError(f"{variable}={shown(text)}{joint}{detail}") from None
