"""Rendering the ML reports (model, batch evaluation, segmentation, monitoring) from the Jinja2
templates in ``templates/`` (:func:`mlops.core.templates.render`: autoescaped, strict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.core.templates import render

TEMPLATES_DIR = Path(__file__).parent / "templates"


def render_report(template: str, **context: Any) -> str:
    """``templates/<template>`` rendered with ``context``."""
    return render(TEMPLATES_DIR, template, **context)
