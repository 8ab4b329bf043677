"""What a DAG run carries, for every way a run is made (schedule, Asset event, UI/REST trigger).

Runs triggered by an Asset event, and REST or UI runs with ``logical_date: null``, have no
logical date (``ds`` is missing from their context). A run's *date* is therefore its logical
date when it has one and its ``run_after`` otherwise: both are fixed when the run is created,
so clearing or re-running it later gives the same date.

A run triggered by Asset events reads what they announce from ``triggering_asset_events``
(the producer sets ``outlet_events[asset].extra``), never "the newest" of anything: a cleared
run then reads the same events again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def run_date(context: dict[str, Any]) -> str:
    """``YYYY-MM-DD`` (UTC) of the run's logical date, or of its ``run_after`` without one."""
    moment: datetime | None = context.get("logical_date")
    if moment is None:
        moment = context["dag_run"].run_after
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def run_moment(context: dict[str, Any]) -> datetime:
    """The run's logical date, or its ``run_after`` without one (timezone-aware, UTC)."""
    moment: datetime | None = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(UTC)


def announced(context: dict[str, Any], asset) -> dict[str, Any] | None:
    """The ``extra`` of the newest event of ``asset`` that triggered this run, or ``None`` when
    the run was not triggered by that asset (a manual or scheduled run).

    When several events were queued into one run, the newest one wins: it describes the
    latest state of what the asset announces (e.g. the newest partition).
    """
    events = context.get("triggering_asset_events") or {}
    try:
        chosen = events[asset]
    except KeyError:
        return None
    if not chosen:
        return None
    newest = max(chosen, key=lambda event: event.timestamp)
    return dict(newest.extra or {})


def announce(context: dict[str, Any], asset, extra: dict[str, Any]) -> None:
    """Attach ``extra`` to the event this task emits for ``asset`` (one of its outlets)."""
    context["outlet_events"][asset].extra = dict(extra)
