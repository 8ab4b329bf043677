"""The whole chain through Airflow's scheduler, next to the same chain under ``dag.test()``.

    .venv/bin/python benchmarks/bench_chain.py [--rounds 1] [--churn-rows 5000] [--retail-rows 20000]

Each side is the demo (``python -m tools.demo``) in a fresh process with a fresh ``MLOPS_HOME``:

* **scheduler**: the product path: model runtime, a metadata database of its own (PostgreSQL:
  ``MLOPS_AIRFLOW_DB_URL`` if set, else a throwaway cluster), api-server, scheduler
  (LocalExecutor), dag-processor and triggerer; ``s3_ingest`` triggered over REST, Asset events
  chain the rest, approvals answered over the HITL REST API;
* **dag.test**: the same five DAGs with ``dag.test()`` one after the other in one process
  (approvals by policy inside the task), the debugging path.

The figure compared is the chain's wall time, from the first trigger to the prod endpoint
answering and the batch predictions written (``chain_s`` in the demo's summary: setting up
Airflow and generating the data are not in it). Per-DAG times are the runs' own durations.
Prints one line per side and round, then ``chain_ratio=<scheduler / dag.test>`` (goal: <= 2).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAGS = ("s3_ingest", "customer_segmentation", "train_model", "deploy_model", "autopilot_batch_predict")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_side(name: str, extra: list[str], rows: list[str], extra_env: dict[str, str] | None = None) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"bench-chain-{name}-"))
    home.chmod(0o755)  # mkdtemp's 0700 would keep a throwaway cluster's postgres user out
    summary = home / "summary.json"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))
              or k == "MLOPS_AIRFLOW_DB_URL"},
           "MLOPS_HOME": str(home), "MLOPS_RUNTIME_PORT": str(free_port()),
           "PYTHONPATH": str(ROOT / "plugins"), **(extra_env or {})}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tools.demo", *extra, *rows, "--summary-json", str(summary)],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    subprocess.run([sys.executable, "-m", "mlops.backends.local.runtime", "stop"], env=env, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(summary.read_text())
    result["process_s"] = wall
    return result


def parse_arguments(doc: str) -> tuple[argparse.Namespace, list[str]]:
    """``--rounds`` and the data sizes every chain benchmark takes; the sizes as demo arguments."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--churn-rows", default="5000")
    parser.add_argument("--retail-rows", default="20000")
    args = parser.parse_args()
    return args, ["--churn-rows", args.churn_rows, "--retail-rows", args.retail_rows]


def main() -> None:
    args, rows = parse_arguments(__doc__)
    totals: dict[str, list[float]] = {"scheduler": [], "dag.test": []}
    for round_number in range(1, args.rounds + 1):
        for name, extra in (("dag.test", ["--dag-test"]), ("scheduler", [])):
            result = run_side(name, extra, rows)
            totals[name].append(result["chain_s"])
            per_dag = " ".join(f"{dag}={result['dag_seconds'][dag]:.1f}" for dag in DAGS)
            print(f"round {round_number} {name:9s} chain {result['chain_s']:6.1f} s (process {result['process_s']:.0f} s; "
                  f"{result['metadata_db'].split(';')[0]}) {per_dag}", flush=True)
    scheduler, baseline = min(totals["scheduler"]), min(totals["dag.test"])
    print(f"chain_s_scheduler={scheduler:.1f} chain_s_dag_test={baseline:.1f} chain_ratio={scheduler / baseline:.2f}")


if __name__ == "__main__":
    main()
