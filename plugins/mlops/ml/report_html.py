"""Rendering the ML reports (model, batch evaluation, segmentation, monitoring) from the Jinja2 templates
in ``templates/``, with autoescaping: a value from the data is never markup. Code that produces HTML of its
own (a pandas table) wraps it in :class:`markupsafe.Markup` before passing it in."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

TEMPLATES_DIR = Path(__file__).parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_report(template: str, **context: Any) -> str:
    """``templates/<template>`` rendered with ``context``; a variable the template names but the caller
    did not pass raises :class:`jinja2.UndefinedError`."""
    return _environment().get_template(template).render(**context)
