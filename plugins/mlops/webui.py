"""``make airflow``: the Airflow web UI (``airflow standalone``) on this project's DAGs.

Loopback only, parallelism 4, example DAGs off. Prints the URL and the login that
``airflow standalone`` generated (stored in ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mlops.airflow_env import configure

PORT = int(os.environ.get("MLOPS_AIRFLOW_PORT", "8080"))


def main() -> int:
    env = configure(parallelism=4)
    os.environ.setdefault("AIRFLOW__API__HOST", "127.0.0.1")
    os.environ.setdefault("AIRFLOW__API__PORT", str(PORT))
    os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    home = Path(env["AIRFLOW_HOME"])
    # standalone starts its components as `airflow ...` commands: use this environment's
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=os.environ.copy())
    passwords = home / "simple_auth_manager_passwords.json.generated"
    for _ in range(120):
        if passwords.exists() or process.poll() is not None:
            break
        time.sleep(1)
    print(f"\nAirflow UI: http://127.0.0.1:{PORT}  (DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']})")
    if passwords.exists():
        print(f"login: admin / password in {passwords}: {passwords.read_text().strip()}")
    print("Ctrl-C stops it.\n", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


if __name__ == "__main__":
    sys.exit(main())
