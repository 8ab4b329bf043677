"""Faults injected into a running deployment, and the checks that must hold after each one.

The faults act the way the machine would: SIGKILL of a process (a task, the scheduler, the
model runtime), a restart of PostgreSQL, a write lock another process holds on the registry,
two people answering one approval at the same instant. Each is cheap: it waits for the moment
named (a task running, a model half-extracted) by polling, then acts once.

:func:`broken_promises` is the one check run after every fault; it returns what is wrong, in
words, so a test asserts ``broken_promises(...) == []`` and a failure names the promise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tools.airflow_stack import POLICY_USER, AirflowError

GROUP = "churn-classifier"
ENDPOINTS = ("churn-classifier-staging", "churn-classifier-prod")


# ---------------------------------------------------------------- waiting for the moment
def task_instance(api, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


def wait_for_task(api, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...], timeout: float,
                  interval: float = 0.3) -> dict[str, Any]:
    """The task instance once it is in one of ``states`` (with a pid when ``running``)."""
    def reached() -> dict[str, Any] | None:
        ti = task_instance(api, dag_id, run_id, task_id)
        if ti["state"] in states and (ti["state"] != "running" or ti.get("pid")):
            return ti
        if api.run(dag_id, run_id)["state"] in ("success", "failed"):
            raise AirflowError(f"{dag_id} run {run_id} ended while waiting for {task_id} to be in {states} "
                               f"(it is {ti['state']})")
        return None

    return api.wait_for(reached, timeout, f"{dag_id}.{task_id} to be {'/'.join(states)}", interval=interval)


# ---------------------------------------------------------------- the faults
def kill_task_process(api, dag_id: str, run_id: str, task_id: str, timeout: float = 900) -> dict[str, Any]:
    """SIGKILL the process running ``task_id`` (as the kernel's OOM killer would) once it runs.

    Returns the task instance as it was when killed (``pid``, ``try_number``).
    """
    ti = wait_for_task(api, dag_id, run_id, task_id, ("running",), timeout, interval=0.2)
    os.kill(ti["pid"], signal.SIGKILL)
    return ti


def kill_and_restart_scheduler(stack) -> list[int]:
    """SIGKILL the scheduler and everything in its session (its executor's workers and their
    task processes), as when its machine is lost; start a new one. Returns the pids killed."""
    killed = stack.kill_component("scheduler")
    stack.start_component("scheduler")
    return killed


def restart_dead_components(stack) -> list[str]:
    """Start again every component whose process exited (what a service manager does:
    systemd's ``Restart=always``, a Kubernetes Deployment). Returns their names."""
    dead = [name for name, process in list(stack.processes.items()) if process.poll() is not None]
    for name in dead:
        stack.processes.pop(name)
        stack.start_component(name)
    return dead


@contextlib.contextmanager
def service_manager(stack, interval: float = 2.0) -> Iterator[list[str]]:
    """While inside, restart every component that exits, as a service manager would; yields
    the list of the components restarted (in order, as they died)."""
    restarted: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval):
            restarted.extend(restart_dead_components(stack))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield restarted
    finally:
        done.set()
        watcher.join()


def wait_until_open(pid: int, path: Path, timeout: float) -> bool:
    """Wait until process ``pid`` has the file ``path`` open; False when it did not in time (or ended)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(Path(f.path) == Path(path) for f in psutil.Process(pid).open_files()):
                return True
        except psutil.Error:
            return False
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def registry_locked(db_path: Path) -> Iterator[None]:
    """Another process's write transaction on the registry database, held while inside."""
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()


def kill_runtime(runtime_dir: Path) -> int | None:
    """SIGKILL the model runtime now; its pid, or None when none was running."""
    from mlops.backends.local.runtime.service import read_pid

    pid = read_pid(runtime_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pid


def kill_runtime_mid_deploy(runtime_dir: Path, still_deploying, timeout: float = 600) -> bool:
    """SIGKILL the model runtime while it extracts a model for a deploy (a staging folder
    ``models/.<sha>-*`` exists: the artifact is being read and unpacked, nothing swapped yet).

    :param still_deploying: called between polls; the watch ends when it returns False.
    :returns: True when the runtime was killed mid-deploy, False when no deploy was seen.
    """
    from mlops.backends.local.runtime.service import read_pid

    models = runtime_dir / "models"
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if any(entry.name.startswith(".") for entry in os.scandir(models)):
                pid = read_pid(runtime_dir)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    return True
        if time.monotonic() - checked > 0.5:
            checked = time.monotonic()
            if not still_deploying():
                return False
        time.sleep(0.002)
    return False


def answer_twice_at_once(api, dag_id: str, run_id: str, task_id: str, option: str = "Approve") -> list[tuple[str, int]]:
    """Two people (``admin`` and ``policy``) answer one waiting approval over REST at the same
    instant. Returns ``[(user, HTTP status), ...]``."""
    api.wait_until_parked(dag_id, run_id, task_id)
    people = [api.as_user("admin"), api.as_user(POLICY_USER)]
    for person in people:
        person.token()  # logged in before the race, so both requests leave together
    path = api.hitl_path(dag_id, run_id, task_id)
    start = threading.Barrier(len(people))

    def answer(person) -> tuple[str, int]:
        start.wait()
        response = person.request("PATCH", path, json={"chosen_options": [option], "params_input": {}})
        return person.username, response.status_code

    with ThreadPoolExecutor(len(people)) as pool:
        return list(pool.map(answer, people))


# ---------------------------------------------------------------- the promises
def _records(path) -> int:
    """Non-empty lines of a file (a transform's records)."""
    return sum(1 for line in path.read_bytes().split(b"\n") if line.strip())


def transform_output_problems(output_uri: str, input_uri: str) -> list[str]:
    """What a reader of a batch transform's output would find wrong, in words (empty when nothing).

    * no torn output: every ``<name>.out`` has one line per record of its input ``<name>``;
    * ``_SUCCESS`` (written last) lists exactly the outputs there, with its ``output_rows`` lines
      in all, and nothing temporary (``.*.partial``) is left beside a published output;
    * nothing else a reader would take for output (every other name starts with ``.``).
    """
    from mlops.core.storage import relative_name, to_path

    out, source = to_path(output_uri), to_path(input_uri)
    if not out.exists():
        return []
    files = {relative_name(p, out): p for p in out.rglob("*") if p.is_file()}
    problems: list[str] = []
    outputs = {name: path for name, path in files.items() if name.endswith(".out")}
    for name, path in outputs.items():
        original = source if source.is_file() else source.joinpath(*name.removesuffix(".out").split("/"))
        if not original.exists():
            problems.append(f"{path}: no input {original} it would be the output of")
        elif (written := _records(path)) != (expected := _records(original)):
            problems.append(f"{path}: torn, {written} lines for the {expected} records of its input")
    temporary = [name for name in files if name.rsplit("/", 1)[-1].startswith(".")]
    others = sorted(set(files) - set(outputs) - set(temporary) - {"_SUCCESS"})
    if others:
        problems.append(f"{output_uri}: files that are no output: {others}")
    if "_SUCCESS" in files:
        success = json.loads(files["_SUCCESS"].read_text())
        listed = sorted(relative_name(to_path(uri), out) for uri in success["outputs"])
        if listed != sorted(outputs):
            problems.append(f"{output_uri}: _SUCCESS lists {listed}, the outputs there are {sorted(outputs)}")
        if sum(_records(path) for path in outputs.values()) != success["output_rows"]:
            problems.append(f"{output_uri}: _SUCCESS says {success['output_rows']} rows, the outputs hold "
                            f"{sum(_records(path) for path in outputs.values())}")
        if temporary:
            problems.append(f"{output_uri}: published with temporary files left beside it: {temporary}")
    return problems


def served_endpoints(runtime_url: str) -> list[dict[str, Any]]:
    """What the model runtime serves now, every account's (name, account, status, sha256)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{runtime_url}/admin/endpoints", timeout=30) as response:
        return json.loads(response.read())["endpoints"]


def broken_promises(api=None, dag_runs: dict[str, list[str]] | None = None) -> list[str]:
    """Every promise the deployment broke, in words (empty when all hold).

    * no partition half-published: every committed partition's files hold the rows its
      manifest lists;
    * no model version registered twice (same data digest, code version and hyperparameters)
      or without its artifact (the file at ``model_uri`` has the registered sha256);
    * no endpoint recorded as serving what it does not serve: the newest succeeded deployment
      of each endpoint the runtime serves names a version with the sha256 it serves, and the
      runtime serves every endpoint a succeeded deployment left it (prod is never torn down);
    * no approval lost or applied twice: no version decided twice into the same status, and a
      train_model run of ``dag_runs`` whose approval succeeded left its version decided;
    * no batch output half-published: every ``autopilot_batch_predict`` run's transform output
      passes :func:`transform_output_problems`.
    """
    from mlops.backends import get_backend
    from mlops.backends.base import PENDING, SUCCEEDED, RegistrationIdentity
    from mlops.core.partitions import MANIFEST, read_manifest, read_partition
    from mlops.core.settings import get_settings
    from mlops.core.storage import data_path, sha256_of

    problems: list[str] = []
    for use_case in ("churn", "retail"):
        root = data_path("raw", use_case)
        for directory in (root.iterdir() if root.exists() else []):
            if not (directory / MANIFEST).exists():
                continue
            manifest = read_manifest(directory)
            listed = manifest["rows"]
            try:
                rows = len(read_partition(directory))
            except Exception as err:  # noqa: BLE001 - any unreadable part is the finding
                problems.append(f"partition {directory}: unreadable ({type(err).__name__}: {err})")
                continue
            if rows != listed:
                problems.append(f"partition {directory}: {rows} rows readable, its manifest lists {listed}")

    batch_root = data_path("autopilot")
    for use_case in (batch_root.iterdir() if batch_root.exists() else []):
        for run in use_case.iterdir():
            transform = run / "transform"
            if (transform / "output").exists():
                problems.extend(transform_output_problems(str(transform / "output"), str(transform / "input")))

    registry = get_backend().registry
    versions = registry.list_versions(GROUP)
    seen: dict[Any, int] = {}
    for version in versions:
        identity = RegistrationIdentity.from_metadata(version.metadata)
        if identity is not None and identity in seen:
            problems.append(f"versions {seen[identity]} and {version.version} are one registration "
                            f"(same data, code and hyperparameters)")
        seen.setdefault(identity, version.version)
        try:
            actual = sha256_of(version.model_uri)
        except FileNotFoundError:
            problems.append(f"version {version.version} is registered without its artifact {version.model_uri}")
            continue
        if actual != version.sha256:
            problems.append(f"version {version.version}: artifact sha256 {actual}, registered {version.sha256}")
        history = registry.approval_history(version.arn)
        decided = [entry["status"] for entry in reversed(history)]
        for before, after in zip(decided, decided[1:], strict=False):
            if before == after:
                problems.append(f"version {version.version}: decided {after} twice in a row ({decided})")

    served = served_endpoints(get_settings().runtime_url)
    deployments = registry.deployments()  # newest first
    for endpoint in served:
        newest = next((d for d in deployments if d.endpoint_name == endpoint["name"]
                       and d.account == endpoint["account"] and d.outcome == SUCCEEDED), None)
        if newest is None:
            problems.append(f"endpoint {endpoint['name']} serves {endpoint['sha256']} with no deployment recorded")
            continue
        recorded = registry.get(newest.arn).sha256
        if endpoint["status"] != "InService" or endpoint["sha256"] != recorded:
            problems.append(f"endpoint {endpoint['name']} is {endpoint['status']} serving {endpoint['sha256']}; the "
                            f"registry records version {newest.arn} ({recorded})")
    prod = next((d for d in deployments if d.stage == "prod" and d.outcome == SUCCEEDED), None)
    if prod is not None and not any(e["name"] == prod.endpoint_name for e in served):
        problems.append(f"the registry records {prod.arn} in prod, the runtime serves no {prod.endpoint_name}")

    if api is not None:
        for run_id in (dag_runs or {}).get("train_model", []):
            if task_instance(api, "train_model", run_id, "approve_model")["state"] != "success":
                continue
            arn = api.xcom("train_model", run_id, "register")["arn"]
            if registry.get(arn).status == PENDING:
                problems.append(f"train_model run {run_id} answered its approval; {arn} is still {PENDING}")
    return problems
