"""``monitor_model``'s own data-quality check: the :class:`~mlops.backends.base.DataQualityMonitor`
that reads the endpoint's capture itself (one implementation for both backends).

SageMaker Model Monitor runs a data-quality job every hour on the prod endpoint's capture against
its definition's baseline. This check needs no managed service: the ``monitor_model`` DAG runs
every hour, so there is no second scheduler. :meth:`CaptureDataQualityMonitor.ensure_schedule`
records which baseline the endpoint's schedule checks against (a JSON record, one entry per
endpoint, replaced when prod's version changes, as SageMaker's definition is), and :meth:`report`
is the schedule's execution for the window: the checks of :mod:`mlops.ml.monitoring` on the
capture against *that recorded baseline*, ground truth joined when labels arrived, in the same
result format a SageMaker execution's reports are turned into.

The local backend keeps the record in its state folder and reads the capture from ``file://``;
the AWS backend (``monitoring.aws.data_quality: own_check``, the default) keeps it under the data
root and reads the capture the prod endpoint wrote to S3, with the project's own connection.
"""

from __future__ import annotations

import hashlib
import threading
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


class CaptureDataQualityMonitor(DataQualityMonitor):
    """The schedule record and its execution (see the module docstring).

    :param record_uri: where the schedule record (JSON) is kept: a local path or an ``s3://`` URI.
    :param by: who runs the check, written in each execution (``monitor_model``).
    """

    by = "monitor_model"

    def __init__(self, record_uri: str):
        self.record_uri = str(record_uri)

    def _read(self) -> dict[str, dict[str, Any]]:
        from mlops.core.storage import read_json, to_path

        if not to_path(self.record_uri).exists():
            return {}
        try:
            found = read_json(self.record_uri)
        except ValueError as err:
            raise MonitoringScheduleError(f"{self.record_uri} is not the schedule record (JSON): {err}") from None
        if not isinstance(found, dict):
            raise MonitoringScheduleError(f"{self.record_uri} is not the schedule record (a JSON object)")
        return found

    def _write(self, schedules: dict[str, dict[str, Any]]) -> None:
        from mlops.core.storage import write_json

        write_json(self.record_uri, schedules)

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
                               "status": "Completed", "window": result["window"], "by": self.by}
        return result
