"""Monitoring a day of data capture: rows/s and peak memory, at two sizes.

    .venv/bin/python benchmarks/bench_monitoring.py [--records 1000000] [--small 100000]

Writes a day (24 hourly partitions) of single-record CSV invocations in SageMaker's capture
layout (``plugins/mlops/backends/local/runtime/capture.py``, the local runtime's writer: same
records, same files), drawn from a churn-like distribution, then checks the whole day against a
baseline with ``monitor_capture`` (``plugins/mlops/ml/monitoring.py``) in a fresh subprocess
per size. Printed per size: records, seconds, rows/s and the checker's peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``, the interpreter and its imports included). Memory is
bounded when the large day peaks at about the small day's RSS: only bucket counts and one chunk
of rows (``monitoring.chunk_rows``) are held, whatever the number of records.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests"), str(ROOT)]
DAY = datetime(2026, 3, 4, tzinfo=UTC)
PER_FILE = 20_000  # records per capture file (the runtime writes one file per flush)


def write_day(root: Path, records: int) -> None:
    """``records`` invocations spread evenly over the day, in the capture layout under ``root``."""
    from mlops.backends.local.runtime.capture import (
        CaptureSettings,
        capture_record,
        hour_prefix,
        write_capture_file,
    )
    from testkit.monitoring import churn_like_frame

    settings = CaptureSettings.from_config({"EnableCapture": True, "InitialSamplingPercentage": 100,
                                            "DestinationS3Uri": root.as_uri(),
                                            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    step = timedelta(days=1) / records
    done = 0
    while done < records:
        size = min(PER_FILE, records - done)
        frame = churn_like_frame(size, seed=done)
        bodies = frame.to_csv(header=False, index=False).splitlines()
        first = DAY + step * done
        lines, prefix = [], hour_prefix(settings.destination, "churn-prod", "AllTraffic", first)
        for i, body in enumerate(bodies):
            when = DAY + step * (done + i)
            where = hour_prefix(settings.destination, "churn-prod", "AllTraffic", when)
            if where != prefix:
                write_capture_file(prefix, lines, first)
                lines, prefix, first = [], where, when
            record = capture_record(settings, body.encode(), "text/csv", b"no,0.12\n", "text/csv; charset=utf-8",
                                    when, inference_id=f"r{done + i}")
            lines.append(json.dumps(record, separators=(",", ":")))
        if lines:
            write_capture_file(prefix, lines, first)
        done += size


def check_day(root: Path) -> dict:
    from airflow.sdk import ObjectStoragePath  # noqa: F401

    import mlops.core.storage  # noqa: F401 - imports (Airflow's object storage) are not the work measured
    from mlops.ml.monitoring import baseline_constraints, baseline_statistics, capture_files, monitor_capture
    from testkit.monitoring import CATEGORICAL, FEATURES, churn_like_frame

    statistics = baseline_statistics(churn_like_frame(20_000, seed=99), FEATURES, CATEGORICAL)
    constraints = baseline_constraints(statistics)
    until = DAY + timedelta(days=1)
    started = time.perf_counter()
    files = capture_files(f"{root.as_uri()}/churn-prod/AllTraffic", DAY, until)
    result = monitor_capture(statistics, constraints, files, DAY, until)
    seconds = time.perf_counter() - started
    return {"records": result["rows"], "files": len(files), "seconds": round(seconds, 2),
            "rows_per_s": round(result["rows"] / seconds), "status": result["status"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure(records: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write", str(root), "--records", str(records)], check=True)
        written = time.perf_counter() - started
        out = subprocess.run([sys.executable, __file__, "--check", str(root)], check=True, capture_output=True,
                             text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if result["records"] != records:
            raise SystemExit(f"read {result['records']} records, wrote {records}")
        return {**result, "write_seconds": round(written, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--check", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_day(args.write, args.records)
        return
    if args.check:
        print(json.dumps(check_day(args.check)))
        return
    import os

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {}
    for records in (args.small, args.records):
        results[records] = measure(records)
        print(json.dumps(results[records]))
    small, large = results[args.small], results[args.records]
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{large['records']:,} records in {large['seconds']} s: {large['rows_per_s']:,} rows/s; peak RSS "
          f"{large['peak_rss_mb']} MB vs {small['peak_rss_mb']} MB for {small['records']:,} records")


if __name__ == "__main__":
    main()
