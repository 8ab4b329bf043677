"""``make airflow``: the Airflow web UI (``airflow standalone``) on this project's DAGs.

Loopback only, parallelism 4, example DAGs off. Prints the URL and the login that
``airflow standalone`` generated (``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``).
``python -m mlops.webui stop`` (run by ``make clean``) stops it and every process it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlops.airflow_env import configure
from mlops.settings import get_settings

PORT = int(os.environ.get("MLOPS_AIRFLOW_PORT", "8080"))


def pid_file() -> Path:
    return get_settings().state_dir / "airflow-standalone.pid"


def start() -> int:
    env = configure(parallelism=4)
    os.environ.setdefault("AIRFLOW__API__HOST", "127.0.0.1")
    os.environ.setdefault("AIRFLOW__API__PORT", str(PORT))
    # workers reach the task execution API on the same server
    os.environ.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://127.0.0.1:{PORT}/execution/")
    os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    home = Path(env["AIRFLOW_HOME"])
    # standalone starts its components as `airflow ...` commands: use this environment's
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=os.environ.copy(),
                               start_new_session=True)
    pid_file().parent.mkdir(parents=True, exist_ok=True)
    pid_file().write_text(str(process.pid))
    passwords = home / "simple_auth_manager_passwords.json.generated"
    for _ in range(120):
        if passwords.exists() or process.poll() is not None:
            break
        time.sleep(1)
    print(f"\nAirflow UI: http://127.0.0.1:{PORT}  (DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']})")
    if passwords.exists():
        login = json.loads(passwords.read_text())
        for user, password in login.items():
            print(f"login: {user} / {password}")
    print("Ctrl-C (or `make clean`) stops it.\n", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return stop()
    finally:
        pid_file().unlink(missing_ok=True)


def stop() -> int:
    """Stop the standalone process group, if one runs; not an error when none does."""
    path = pid_file()
    if not path.exists():
        return 0
    pid = int(path.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(30):
            os.killpg(pid, 0)
            time.sleep(0.5)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    path.unlink(missing_ok=True)
    print(f"stopped airflow standalone {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(stop() if sys.argv[1:] == ["stop"] else start())
