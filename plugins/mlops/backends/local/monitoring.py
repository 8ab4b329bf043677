"""The DataQualityMonitor port's local twin: ``monitor_model``'s own hourly run is the schedule.

SageMaker runs a data-quality job every hour on the prod endpoint's capture against the
definition's baseline. Here the ``monitor_model`` DAG runs every hour, so there is no second
scheduler to start: :meth:`LocalDataQualityMonitor.ensure_schedule` records which baseline the
endpoint's schedule checks against (``<state>/monitoring/schedules.json``: one entry per endpoint,
replaced when prod's version changes, as SageMaker's definition is), and :meth:`report` is the
schedule's execution for the window: it runs the checks of :mod:`mlops.ml.monitoring` on the
capture against *that recorded baseline*, and answers in the same result format a SageMaker
execution's reports are turned into.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from mlops.backends.base import (
    DataQualityMonitor,
    MonitoringBaseline,
    MonitoringCheck,
    MonitoringSchedule,
    MonitoringScheduleError,
)

HOURLY = "hourly: the monitor_model DAG's schedule"
_LOCK = threading.Lock()


def definition_name(endpoint_name: str, baseline: MonitoringBaseline) -> str:
    """``<endpoint>-dq-<8 hex of the baseline's URIs>``: a new baseline is a new definition."""
    digest = hashlib.sha256(f"{baseline.statistics_uri}\n{baseline.constraints_uri}".encode()).hexdigest()[:8]
    return f"{endpoint_name}-dq-{digest}"


class LocalDataQualityMonitor(DataQualityMonitor):
    """The local schedule record and its execution (see the module docstring).

    :param state_dir: the local state folder (``MLOPS_HOME/state``); the record is
        ``monitoring/schedules.json`` in it.
    """

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "monitoring" / "schedules.json"

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise MonitoringScheduleError(f"{self.path} is not the schedule record (JSON): {err}") from None

    def _write(self, schedules: dict[str, dict[str, Any]]) -> None:
        from mlops.core.storage import write_text_atomic

        write_text_atomic(self.path, json.dumps(schedules, indent=2, sort_keys=True))

    def ensure_schedule(self, endpoint_name: str, baseline: MonitoringBaseline) -> MonitoringSchedule:
        definition = definition_name(endpoint_name, baseline)
        with _LOCK:
            schedules = self._read()
            current = schedules.get(endpoint_name)
            if current is not None and current["job_definition_name"] == definition:
                return MonitoringSchedule(**{**current, "change": "unchanged"})
            schedule = MonitoringSchedule(
                name=f"{endpoint_name}-data-quality", job_definition_name=definition, endpoint_name=endpoint_name,
                baseline=baseline.to_dict(), change="created" if current is None else "replaced",
                status="Scheduled", cron=HOURLY)
            schedules[endpoint_name] = {**schedule.to_dict(), "change": "recorded"}
            self._write(schedules)
        return schedule

    def schedule(self, endpoint_name: str) -> MonitoringSchedule | None:
        """The endpoint's recorded schedule, or None."""
        found = self._read().get(endpoint_name)
        return None if found is None else MonitoringSchedule(**{**found, "change": "unchanged"})

    def report(self, schedule: MonitoringSchedule, check: MonitoringCheck) -> dict[str, Any]:
        """Run the schedule's execution now: the capture of ``check``'s window against the
        baseline the schedule records (ground truth joined when labels arrived)."""
        from mlops.core.storage import read_json
        from mlops.ml.monitoring import capture_files, monitor_capture, read_ground_truth

        recorded = self.schedule(schedule.endpoint_name)
        if recorded is None or recorded.job_definition_name != schedule.job_definition_name:
            raise MonitoringScheduleError(
                f"the schedule of {schedule.endpoint_name} checks against "
                f"{recorded.job_definition_name if recorded else 'nothing'}, not {schedule.job_definition_name}: "
                "call ensure_schedule first")
        baseline = MonitoringBaseline.from_dict(recorded.baseline)
        files = capture_files(check.capture_prefix, check.since, check.until)
        labels = read_ground_truth(capture_files(check.ground_truth_prefix, check.since, check.until)) or None
        result = monitor_capture(read_json(baseline.statistics_uri), read_json(baseline.constraints_uri), files,
                                 check.since, check.until, check.settings, labels=labels,
                                 positive_label=check.positive_label, thresholds=check.thresholds)
        result["capture_files"] = len(files)
        result["execution"] = {"schedule": recorded.name, "job_definition_name": recorded.job_definition_name,
                               "status": "Completed", "window": result["window"], "by": "monitor_model"}
        return result
