"""Airflow's real components on this project, and the REST client a user's script would use.

:class:`AirflowStack` runs what production runs, one process each: ``airflow api-server``,
``airflow scheduler`` (LocalExecutor), ``airflow dag-processor`` and ``airflow triggerer``, on
this project's ``dags/`` and ``plugins/``, with its own ``AIRFLOW_HOME`` and metadata database
(:mod:`tools.metadata_db`), on loopback. With :class:`~tools.airflow_env.CelerySettings` the
scheduler hands tasks to the CeleryExecutor instead (Redis broker, PostgreSQL result backend),
and every ``airflow celery worker`` is a component of its own (``worker-<name>``). :class:`AirflowApi` talks to it over the REST API v2
with the documented token flow: trigger runs, read task states and XComs, answer
human-in-the-loop tasks (``PATCH .../hitlDetails``).

The demo (``make demo``), the web UI launcher (``make airflow``) and the scheduler tests all
use these two classes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.paths import PROJECT_ROOT
from tools.airflow_env import CelerySettings, CeleryWorker, check_celery_database

if TYPE_CHECKING:
    from tools.metadata_db import MetadataDatabase

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FINISHED = ("success", "failed")
FINISHED_TASK_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")
ADMIN = "admin"
# The account an automated approver answers human-in-the-loop tasks with: the registry then
# records "policy" as the approver (see mlops.operators.approval).
POLICY_USER = "policy"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def now() -> datetime:
    """The current time, to compare with the times the REST API reports."""
    return datetime.now(UTC)


class AirflowError(RuntimeError):
    """Airflow did not start, or a run did not end the way it was expected to."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowStack:
    """Airflow 3's components as separate processes, started and stopped together.

    :param home: ``AIRFLOW_HOME`` (created); component logs go to ``home/logs/components/<component>.log``.
    :param database_url: ``sql_alchemy_conn`` of the metadata database.
    :param port: API server port on 127.0.0.1 (default: a free one).
    :param parallelism: task slots of the executor (with Celery, at least the workers' slots).
    :param environment: extra variables for every component (``MLOPS_*`` settings, ...).
    :param celery: run the CeleryExecutor and these workers instead of the LocalExecutor.
    :raises AirflowError: ``celery`` with a database that is not PostgreSQL.
    """

    def __init__(self, home: Path, database_url: str, *, port: int | None = None, parallelism: int = 4,
                 environment: dict[str, str] | None = None, celery: CelerySettings | None = None):
        if celery is not None:
            try:
                check_celery_database(database_url)
            except ValueError as err:
                raise AirflowError(str(err)) from None
            parallelism = max(parallelism, celery.slots)
        self.home = Path(home)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.celery = celery
        self.workers: dict[str, CeleryWorker] = {w.component: w for w in (celery.workers if celery else ())}
        self.processes: dict[str, subprocess.Popen] = {}
        executor = celery.environment() if celery else {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        self.env = {
            **inherited,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **executor,
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin,{POLICY_USER}:admin",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            # Signing keys shared by the components of this stack only; made fresh each start.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "GX_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(
                [str(PROJECT_ROOT / "plugins"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])),
            # Components start tasks as `airflow ...` commands: this interpreter's.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            **(environment or {}),
        }

    @property
    def log_dir(self) -> Path:
        return self.home / "logs" / "components"

    def log_of(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    @property
    def components(self) -> tuple[str, ...]:
        """Every component this stack starts: Airflow's, then the Celery workers."""
        return (*COMPONENTS, *self.workers)

    # ------------------------------------------------------------ lifecycle
    def _run_step(self, name: str, argv: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_of(name).open("w") as log:
            done = subprocess.run([sys.executable, "-m", *argv], env=self.env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600)
        if done.returncode != 0:
            raise AirflowError(f"{' '.join(argv)} failed ({done.returncode}); see {self.log_of(name)}")

    def migrate(self) -> None:
        """Create or upgrade the metadata database's schema, and the pools the DAGs use."""
        self._run_step("db-migrate", ["airflow", "db", "migrate"])
        self._run_step("pools", ["tools.airflow_env", "pools"])

    def start_component(self, component: str) -> subprocess.Popen:
        """Start one component in a session of its own (so it can be stopped alone, with its tasks)."""
        argv = [sys.executable, "-m", "airflow"]
        if component in self.workers:
            argv += self.workers[component].argv()
        else:
            argv.append(component)
        if component == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_of(component).open("a") as log:
            process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home)
        self.processes[component] = process
        return process

    def start_worker(self, worker: CeleryWorker) -> subprocess.Popen:
        """Start one more Celery worker (a stack on the CeleryExecutor only)."""
        if self.celery is None:
            raise AirflowError(f"{worker.component}: this stack runs the LocalExecutor, which has no Celery workers")
        if worker.component in self.processes:
            raise AirflowError(f"{worker.component} is running already")
        self.workers[worker.component] = worker
        return self.start_component(worker.component)

    def start(self, timeout: float = 300) -> AirflowApi:
        """Migrate, start every component, wait until the API answers and every DAG is parsed."""
        self.migrate()
        for component in self.components:
            self.start_component(component)
        api = AirflowApi(self.url, self.home)
        deadline = time.monotonic() + timeout
        while not api.answers():
            self.check_alive()
            if time.monotonic() > deadline:
                raise AirflowError(f"the API server did not answer {self.url} within {timeout:.0f}s; "
                                   f"see {self.log_of('api-server')}")
            time.sleep(0.5)
        expected = sorted(p.stem for p in (PROJECT_ROOT / "dags").glob("*.py") if not p.name.startswith("_"))

        def parsed() -> bool:
            self.check_alive()
            errors = api.get("/importErrors")["import_errors"]
            if errors:
                raise AirflowError("DAG import errors: " + "; ".join(
                    f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errors))
            return len(api.dag_ids()) >= len(expected)

        api.wait_for(parsed, max(deadline - time.monotonic(), 30), f"all {len(expected)} DAG files parsed")
        return api

    def check_alive(self) -> None:
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise AirflowError(f"airflow {component} exited with code {process.returncode}; "
                                   f"see {self.log_of(component)}")

    def session_of(self, component: str) -> list[int]:
        """The pids in the component's session: it, and every process it started that has not
        left the session (task processes, which take process groups of their own, included)."""
        process = self.processes.get(component)
        return _session_members(process.pid) if process is not None else []

    def stop_component(self, component: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Signal the component's process group, wait for it (then SIGKILL it), and SIGKILL what
        is left of its session: a task process outlives a Celery worker otherwise."""
        process = self.processes.pop(component, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass
        _kill(_session_members(process.pid))

    def kill_component(self, component: str) -> list[int]:
        """SIGKILL the component and everything in its session at once, as when its machine is
        lost: no process of it gets to clean up or tell anyone. Returns the pids killed."""
        process = self.processes.pop(component)
        members = _session_members(process.pid)
        _kill(members)
        process.wait(10)
        return members

    def stop(self) -> None:
        """Stop every component (the scheduler first, so no new task starts; then the workers)."""
        for component in ("scheduler", *self.workers, "triggerer", "dag-processor", "api-server"):
            self.stop_component(component)


def _session_members(session_id: int) -> list[int]:
    import psutil

    members = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == session_id:
                members.append(pid)
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return members


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def project_stack(purpose: str, home: Path, executor: str | None = None, **options: Any
                  ) -> tuple[AirflowStack, MetadataDatabase]:
    """The stack the demo and the web UI run, on a metadata database of its own (drop it after).

    :param home: ``MLOPS_HOME``: the database's and ``AIRFLOW_HOME``'s parent.
    :param executor: ``local`` (the LocalExecutor) or ``celery`` (:func:`~tools.airflow_env.celery_settings`:
        Redis at ``MLOPS_CELERY_BROKER_URL``, a worker per queue; PostgreSQL required); default
        ``$MLOPS_AIRFLOW_EXECUTOR``, else ``local``.
    :param options: :class:`AirflowStack`'s keyword arguments.
    :raises AirflowError: Celery's broker does not answer.
    :raises MetadataDatabaseError: Celery, and no PostgreSQL to be had.
    """
    from tools.airflow_env import broker_unreachable, celery_settings, configured_broker_url, executor_name
    from tools.metadata_db import provision, safe_url

    broker = None
    if executor_name(executor) == "celery":
        broker = configured_broker_url()
        reason = broker_unreachable(broker)
        if reason:
            raise AirflowError(f"the CeleryExecutor's broker {safe_url(broker)} does not answer ({reason}); start "
                               "Redis there or set MLOPS_CELERY_BROKER_URL")
    database = provision(purpose, home, require_postgres="the CeleryExecutor" if broker else None)
    try:
        celery = celery_settings(database.url, broker) if broker else None
        return AirflowStack(home / "airflow", database.url, celery=celery, **options), database
    except BaseException:
        database.drop()
        raise


class AirflowApi:
    """The Airflow REST API v2, as a user's script drives it (token flow of the simple auth manager).

    :param url: the API server, e.g. ``http://127.0.0.1:8080``.
    :param home: ``AIRFLOW_HOME``, where the API server writes the generated passwords.
    """

    def __init__(self, url: str, home: Path, username: str = ADMIN):
        self.url = url.rstrip("/")
        self.home = Path(home)
        self.username = username
        self._token: str | None = None

    def as_user(self, username: str) -> AirflowApi:
        return AirflowApi(self.url, self.home, username)

    # ------------------------------------------------------------ transport
    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def password(self, username: str | None = None) -> str | None:
        if not self.passwords_file.exists():
            return None
        return json.loads(self.passwords_file.read_text()).get(username or self.username)

    def answers(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/api/v2/version", timeout=2).status_code == 200 and bool(self.password())
        except httpx.HTTPError:
            return False

    def token(self) -> str:
        import httpx

        if self._token is None:
            response = httpx.post(f"{self.url}/auth/token", timeout=30,
                                  json={"username": self.username, "password": self.password()})
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any):
        import httpx

        headers = {"Authorization": f"Bearer {self.token()}"}
        for attempt in range(5):  # the API server may restart a worker; retry connection errors only
            try:
                return httpx.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(1 + attempt)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        if response.status_code >= 400:
            raise AirflowError(f"GET {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        response = self.request(method, path, json=body)
        if response.status_code >= 400:
            raise AirflowError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    @staticmethod
    def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AirflowError(f"waited {timeout:.0f}s for {what}")
            time.sleep(interval)

    # ------------------------------------------------------------ DAGs and runs
    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self.get("/dags", params={"limit": 1000})["dags"]]

    def unpause(self, dag_id: str) -> None:
        self.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.send("PATCH", f"/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run without a logical date, as the UI's trigger form does; return its run id."""
        body = {"logical_date": None, "conf": conf or {}}
        return self.send("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id``, oldest first."""
        return self.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after", "limit": 1000})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
                for ti in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """The value a task pushed, or ``None`` when it pushed none."""
        response = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                                params={"map_index": map_index, "deserialize": True, "stringify": False})
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AirflowError(f"XCom {key} of {dag_id}/{run_id}/{task_id}: {response.status_code} {response.text}")
        return response.json()["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A try's log as text: every string in its structured records (messages, exceptions)."""
        records = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                           params={"full_content": True})["content"]

        def strings(value: Any) -> Iterator[str]:
            if isinstance(value, str):
                yield value
            elif isinstance(value, dict):
                for item in value.values():
                    yield from strings(item)
            elif isinstance(value, list):
                for item in value:
                    yield from strings(item)

        return "\n".join(strings(records))

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float,
                     on_waiting: Callable[[str, str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Wait until the run ends; hand every task that waits for input to ``on_waiting``.

        :raises AirflowError: the run did not end in time, naming the unfinished tasks.
        """
        answered: set[str] = set()

        def finished() -> dict[str, Any] | None:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED:
                return run
            if on_waiting is not None:
                for ti in self.task_instances(dag_id, run_id):
                    if ti["state"] == "awaiting_input" and ti["task_id"] not in answered:
                        on_waiting(dag_id, run_id, ti)
                        answered.add(ti["task_id"])
            return None

        try:
            return self.wait_for(finished, timeout, f"{dag_id} run {run_id} to finish", interval=1.0)
        except AirflowError:
            states = self.task_states(dag_id, run_id)
            pending = {t: s for t, s in states.items() if s not in ("success", "skipped", "failed")}
            raise AirflowError(f"{dag_id} run {run_id} did not finish within {timeout:.0f}s; "
                               f"unfinished tasks: {pending}") from None

    def wait_for_new_run(self, dag_id: str, run_type: str, timeout: float, after: datetime | None = None) -> str:
        """The run id of the first run of ``dag_id`` of ``run_type`` (``asset_triggered``,
        ``scheduled``, ``manual``) created after ``after`` (any run when None), once it exists."""
        def created() -> str | None:
            for run in self.runs(dag_id):
                if run["run_type"] == run_type and (after is None or _time(run["queued_at"] or run["run_after"]) > after):
                    return run["dag_run_id"]
            return None

        return self.wait_for(created, timeout, f"a {run_type} run of {dag_id}")

    # ------------------------------------------------------------ human-in-the-loop
    def hitl_path(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        return f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"

    def wait_until_parked(self, dag_id: str, run_id: str, task_id: str, timeout: float = 600) -> dict[str, Any]:
        """Wait until a human-in-the-loop task waits for input *and* its worker process is gone.

        Answering while the task's process is still exiting races the scheduler (it then sees
        the first attempt's end after the answer re-queued the task, and retries it), so wait
        for ``awaiting_input``, then for the recorded ``pid`` to exit, then a few scheduler loops.
        """
        import psutil

        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"

        def parked() -> dict[str, Any] | None:
            detail = self.get(path)
            if detail["state"] in FINISHED_TASK_STATES:
                raise AirflowError(f"{dag_id}.{task_id} in run {run_id} ended {detail['state']} "
                                   "instead of waiting for input")
            return detail if detail["state"] == "awaiting_input" else None

        detail = self.wait_for(parked, timeout, f"{task_id} to wait for input")
        if detail.get("pid"):
            self.wait_for(lambda: not psutil.pid_exists(detail["pid"]), 120, f"{task_id}'s process to exit",
                          interval=0.2)
        time.sleep(2)
        return detail

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str,
               params_input: dict[str, Any] | None = None) -> dict[str, Any]:
        """Answer a waiting human-in-the-loop task (once its worker has exited)."""
        self.wait_until_parked(dag_id, run_id, task_id)
        return self.send("PATCH", self.hitl_path(dag_id, run_id, task_id),
                         {"chosen_options": [option], "params_input": params_input or {}})
