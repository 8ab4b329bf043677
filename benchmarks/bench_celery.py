"""Tasks per minute through the whole chain: the CeleryExecutor next to the LocalExecutor.

    .venv/bin/python benchmarks/bench_celery.py [--rounds 1] [--churn-rows 5000] [--retail-rows 20000]

Each side is the demo (``python -m tools.demo``) in a fresh process with a fresh ``MLOPS_HOME``
(:func:`bench_chain.run_side`), on the same data, through the scheduler:

* **local**: api-server, scheduler with the LocalExecutor (4 slots), dag-processor, triggerer;
* **celery**: the same with the CeleryExecutor, Redis as the broker (a database of its own on
  ``MLOPS_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379``, flushed after), PostgreSQL as the
  metadata database and result backend, and the project's two workers (``default``: 4 slots;
  ``heavy``: 1), all on this machine's cores.

The chain is ``s3_ingest`` triggered over REST, then ``customer_segmentation``, ``train_model``,
``deploy_model`` by Asset events (approvals answered over the HITL REST API) and
``autopilot_batch_predict``; its wall time runs from the trigger to the predictions written.
Throughput is the task instances that ran (success or failed; skipped ones never reach a worker)
over that time; next to it, how busy each queue's tasks kept their worker: the tasks' durations
added up per queue, over the chain's time (1.0: one slot busy throughout). Prints a line per side
and round, then the best of each.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench_chain import DAGS, parse_arguments, run_side

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from testkit.redis_broker import claim, release

    args, rows = parse_arguments(__doc__)
    best: dict[str, float] = {}
    for round_number in range(1, args.rounds + 1):
        for executor in ("local", "celery"):
            broker = claim() if executor == "celery" else None
            try:
                result = run_side(executor, ["--executor", executor], rows,
                                  {"MLOPS_CELERY_BROKER_URL": broker[0]} if broker else None)
            finally:
                if broker:
                    release(*broker)
            rate = result["tasks_run"] * 60 / result["chain_s"]
            best[executor] = max(best.get(executor, 0.0), rate)
            per_dag = " ".join(f"{dag}={result['dag_seconds'][dag]:.1f}" for dag in DAGS)
            busy = " ".join(f"{queue}={seconds / result['chain_s']:.2f}"
                            for queue, seconds in sorted(result["queue_seconds"].items()))
            print(f"round {round_number} {executor:6s} chain {result['chain_s']:6.1f} s, {result['tasks_run']} tasks: "
                  f"{rate:5.1f} tasks/min; slots busy per queue {busy} ({result['metadata_db'].split(';')[0]}) "
                  f"{per_dag}", flush=True)
    print(f"tasks_per_min_local={best['local']:.1f} tasks_per_min_celery={best['celery']:.1f} "
          f"ratio={best['celery'] / best['local']:.2f}")


if __name__ == "__main__":
    main()
