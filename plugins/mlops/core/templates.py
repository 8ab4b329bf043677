"""Rendering the project's HTML reports from Jinja2 templates, with autoescaping: a value from the
data is never markup. Code that produces HTML of its own (a pandas table) wraps it in
:class:`markupsafe.Markup` before passing it in. Jinja2 is imported on first use, never at DAG parse."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@cache
def _environment(templates_dir: Path) -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(templates_dir: Path, template: str, **context: Any) -> str:
    """``templates_dir/<template>`` rendered with ``context``; a variable the template names but the
    caller did not pass raises :class:`jinja2.UndefinedError`."""
    return _environment(templates_dir).get_template(template).render(**context)
