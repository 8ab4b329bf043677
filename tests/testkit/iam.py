"""Render the IAM policy templates in ``include/iam/`` and evaluate them, as IAM would, for tests.

* :func:`load` reads a template (``string.Template`` placeholders such as ``${DataBucket}``) and
  :func:`render` fills every placeholder (a missing one raises ``KeyError``).
* :func:`allowed` answers "does this policy allow ``action`` on ``resource`` in ``context``?":
  Allow statements only (the project's policies have no Deny), ``Action``/``NotAction`` patterns
  matched case-insensitively and ``Resource`` patterns case-sensitively with IAM's wildcards
  (``*`` any run of characters, ``?`` one character; nothing else is special), and the
  condition operators the policies use (``StringEquals``, ``StringLike``), where a key missing
  from the request context fails the condition, as in IAM.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IAM_DIR = ROOT / "include" / "iam"
SUPPORTED_CONDITIONS = ("StringEquals", "StringLike")


def load(name: str) -> string.Template:
    return string.Template((IAM_DIR / name).read_text())


def placeholders(name: str) -> set[str]:
    """Every ``${Name}`` placeholder the template uses."""
    template = load(name)
    return {match.group("braced") for match in template.pattern.finditer(template.template)
            if match.group("braced")}


def render(name: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The policy document with every placeholder filled (``KeyError`` names a missing value)."""
    return json.loads(load(name).substitute(values))


def render_for_store(name: str, bucket: str, prefix: str, account: str = "123456789012",
                     region: str = "us-east-1") -> dict[str, Any]:
    """``name`` rendered for a test deployment's bucket, data prefix, account and region; every
    other placeholder (name prefix, role name, keyspace) gets its own name as its value."""
    values = {placeholder: placeholder.lower() for placeholder in placeholders(name)}
    values.update(DataBucket=bucket, DataPrefix=prefix, AccountId=account, Region=region)
    return render(name, {key: value for key, value in values.items() if key in placeholders(name)})


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    return as_list(policy["Statement"])


@functools.cache
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcard match: ``*`` and ``?`` only, the whole value."""
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        if operator not in SUPPORTED_CONDITIONS:
            raise ValueError(f"condition operator {operator} is not supported by this evaluator")
        for key, expected in tests.items():
            if key not in context:
                return False
            value = context[key]
            if operator == "StringEquals" and value not in as_list(expected):
                return False
            if operator == "StringLike" and not any(matches(p, value) for p in as_list(expected)):
                return False
    return True


def allowing(policy: Mapping[str, Any], action: str, resource: str,
             context: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """The statements of ``policy`` that allow ``action`` on ``resource``."""
    for statement in statements(policy):
        if statement.get("Effect") != "Allow":
            raise ValueError(f"statement {statement.get('Sid')} is not an Allow: this evaluator has no Deny")
        if not any(matches(p, action, ignore_case=True) for p in as_list(statement["Action"])):
            continue
        if not any(matches(p, resource) for p in as_list(statement["Resource"])):
            continue
        if not _condition_holds(statement.get("Condition", {}), context or {}):
            continue
        yield statement


def allowed(policy: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str] | None = None) -> bool:
    return next(allowing(policy, action, resource, context), None) is not None


def grants(policy: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    """Every ``(statement, action, resource pattern)`` the policy grants."""
    for statement in statements(policy):
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                yield statement, action, resource


def granted_actions(policy: Mapping[str, Any]) -> set[str]:
    return {action for _, action, _ in grants(policy)}
