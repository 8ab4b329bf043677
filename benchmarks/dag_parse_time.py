"""Parse time of each DAG file, as the dag-processor sees it (Airflow already imported).

    python benchmarks/dag_parse_time.py

Prints one line per file (median of 5 parses in a fresh DagBag) and the total.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp())


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    DagBag(str(ROOT / "dags"))  # warm: Airflow's own imports and the mlops package
    total = 0.0
    for path in sorted((ROOT / "dags").glob("*.py")):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            bag = DagBag(str(path))
            times.append(time.perf_counter() - start)
            assert not bag.import_errors, bag.import_errors
        median = statistics.median(times)
        total += median
        print(f"{path.name:32s} {median * 1000:7.1f} ms")
    print(f"{'total':32s} {total * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
