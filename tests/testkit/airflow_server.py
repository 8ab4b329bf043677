"""A real Airflow 3 (``airflow standalone``: api-server, scheduler, dag-processor, triggerer)
on this project's DAGs, in a temporary home, on loopback — for the REST and browser tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from testkit.net import free_port

ROOT = Path(__file__).resolve().parents[2]


class AirflowServer:
    """Start, talk to (REST, with the documented token flow) and stop an Airflow instance."""

    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))},
            "MLOPS_HOME": str(home / "mlops"),
            "MLOPS_RUNTIME_PORT": str(free_port()),
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "GX_ANALYTICS_ENABLED": "false",
        }
        self.process: subprocess.Popen | None = None
        self.log = home / "standalone.log"
        self._token: str | None = None

    # -- lifecycle
    def start(self, timeout: float = 240) -> AirflowServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"], env=self.env, start_new_session=True,
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/api/v2/version", timeout=2).status_code == 200 and self.password:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            raise TimeoutError(f"airflow did not answer within {timeout}s; see {self.log}")
        expected = len(list((ROOT / "dags").glob("*.py")))
        self.wait_for(lambda: len(self.get("/dags", params={"limit": 100})["dags"]) >= expected, timeout,
                      f"all {expected} DAGs parsed")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        subprocess.run([sys.executable, "-m", "mlops.backends.local.runtime", "stop"], env=self.env,
                       capture_output=True, timeout=60)

    # -- auth and REST
    @property
    def password(self) -> str | None:
        generated = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        return json.loads(generated.read_text())["admin"] if generated.exists() else None

    def token(self) -> str:
        if self._token is None:
            response = httpx.post(f"{self.url}/auth/token", json={"username": "admin", "password": self.password},
                                  timeout=30)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs):
        response = self.request("GET", path, **kwargs)
        response.raise_for_status()
        return response.json()

    def wait_for(self, condition, timeout: float, what: str, interval: float = 2.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"waited {timeout}s for {what}; see {self.log}")

    # -- helpers for tests
    def seed_churn_partition(self, rows: int = 1500) -> None:
        """Publish a raw churn partition as s3_ingest would (through LandingToRawOperator)."""
        code = (
            "from mlops.airflow_env import configure; configure()\n"
            "from mlops.entrypoints import generators_module\n"
            "from mlops.storage import data_path\n"
            "from mlops.operators.s3 import LandingToRawOperator\n"
            f"frame = generators_module().churn({rows}, seed=5)\n"
            "path = data_path('landing', 'churn', 'seed.csv'); path.parent.mkdir(parents=True, exist_ok=True)\n"
            "frame.to_csv(path.open('w'), index=False)\n"
            "ti = type('TI', (), {'try_number': 1})()\n"
            "LandingToRawOperator(task_id='seed', use_case='churn', files=[str(path)], ds='2026-01-01')"
            ".execute({'ti': ti})\n"
        )
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, capture_output=True, timeout=300)

    def trigger(self, dag_id: str, conf: dict) -> str:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        response = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def wait_until_parked(self, dag_id: str, run_id: str, task_id: str, timeout: float = 600) -> None:
        """Wait until a human-in-the-loop task waits for input *and* its worker is gone.

        Answering while the task's process is still exiting races the scheduler: it then sees the
        first attempt's "success" after the answer re-queued the task, and retries it. So wait for
        ``awaiting_input``, then for the task's process (the ``pid`` Airflow recorded) to exit,
        then give the scheduler a few loops to take the executor's event.
        """
        import psutil

        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"

        def awaiting_input() -> dict | None:
            detail = self.get(path)
            return detail if detail.get("state") == "awaiting_input" else None

        pid = self.wait_for(awaiting_input, timeout, f"{task_id} to wait for input").get("pid")
        if pid:
            self.wait_for(lambda: not psutil.pid_exists(pid), 120, f"{task_id}'s process {pid} to exit")
        time.sleep(3)

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
