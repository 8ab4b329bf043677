"""``make airflow``: the Airflow web UI on this project, with every component a user runs.

The same :class:`~tools.airflow_stack.AirflowStack` the demo uses (API server, scheduler,
dag-processor, triggerer; LocalExecutor, parallelism 4) on ``http://127.0.0.1:8080``
(``MLOPS_AIRFLOW_PORT``), the model runtime, and a metadata database of its own
(:mod:`tools.metadata_db`, dropped when the UI stops). ``MLOPS_AIRFLOW_EXECUTOR=celery`` runs the
CeleryExecutor and a Celery worker per queue instead (Redis at ``MLOPS_CELERY_BROKER_URL``). Prints the URL and the login.
Ctrl-C, or ``python -m tools.webui stop`` (run by ``make clean``), stops it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from mlops.core.schema import TcpPort, env_value
from mlops.core.settings import get_settings

PORT = env_value("MLOPS_AIRFLOW_PORT", TcpPort, 8080)


def pid_file() -> Path:
    return get_settings().state_dir / "webui.pid"


def start() -> int:
    from mlops.backends.local.runtime.service import start_runtime
    from tools.airflow_stack import project_stack

    settings = get_settings()
    start_runtime(settings)
    stack, database = project_stack("webui", settings.home, port=PORT, parallelism=4,
                                    environment={"MLOPS_HOME": str(settings.home)})
    pid_file().parent.mkdir(parents=True, exist_ok=True)
    pid_file().write_text(str(os.getpid()))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        api = stack.start()
        print(f"\nAirflow UI: {api.url}  (DAGs from {stack.env['AIRFLOW__CORE__DAGS_FOLDER']})")
        print(f"login: {api.username} / {api.password()}")
        print(f"metadata database: {database.describe()}")
        print(f"model runtime: {settings.runtime_url}")
        print("Every DAG starts paused: unpause one to let its schedule or Asset events run it, or trigger it.")
        print("Ctrl-C (or `make clean`) stops it.\n", flush=True)
        while not stopping:
            stack.check_alive()
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        database.drop()
        pid_file().unlink(missing_ok=True)
    return 0


def stop() -> int:
    """Stop a running ``make airflow``; not an error when none runs."""
    path = pid_file()
    if not path.exists():
        return 0
    pid = int(path.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(120):
            os.kill(pid, 0)
            time.sleep(0.5)
        print(f"make airflow ({pid}) did not stop within 60 s")
        return 1
    except ProcessLookupError:
        path.unlink(missing_ok=True)
    print(f"stopped make airflow ({pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.webui", description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=("start", "stop"), default="start",
                        help="start (default): run the UI in the foreground; stop: stop a running one")
    return stop() if parser.parse_args(argv).command == "stop" else start()


if __name__ == "__main__":
    sys.exit(main())
