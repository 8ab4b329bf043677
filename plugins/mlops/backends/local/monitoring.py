"""The DataQualityMonitor port's local twin: ``monitor_model``'s own hourly run is the schedule.

The check is :class:`mlops.ml.capture_monitor.CaptureDataQualityMonitor` (the AWS backend runs
the same one on the S3 capture unless ``monitoring.aws.data_quality`` asks for Model Monitor);
locally its record is ``<state>/monitoring/schedules.json``, written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops.ml.capture_monitor import HOURLY, CaptureDataQualityMonitor, definition_name

__all__ = ["HOURLY", "LocalDataQualityMonitor", "definition_name"]


class LocalDataQualityMonitor(CaptureDataQualityMonitor):
    """The local schedule record and its execution (see the module docstring).

    :param state_dir: the local state folder (``MLOPS_HOME/state``); the record is
        ``monitoring/schedules.json`` in it.
    """

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "monitoring" / "schedules.json"
        super().__init__(str(self.path))

    def _read(self) -> dict[str, dict[str, Any]]:
        from mlops.backends.base import MonitoringScheduleError

        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise MonitoringScheduleError(f"{self.path} is not the schedule record (JSON): {err}") from None

    def _write(self, schedules: dict[str, dict[str, Any]]) -> None:
        from mlops.core.storage import write_text_atomic

        write_text_atomic(self.path, json.dumps(schedules, indent=2, sort_keys=True))
