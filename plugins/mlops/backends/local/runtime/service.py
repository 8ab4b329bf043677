"""Running the local runtime as a service of its own: serve in the foreground, start detached with a
clean environment, stop, status, and the command line (``python -m mlops.backends.local.runtime``)."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mlops.backends.local.runtime.app import create_app
from mlops.backends.local.runtime.batcher import BATCH_WAIT_S, PREDICTION_WORKERS, PredictionBatcher
from mlops.backends.local.runtime.endpoints import (
    EndpointTable,
    freeze_heap,
    log_file,
    pid_file,
)
from mlops.core.code_version import content_digest
from mlops.core.entrypoints import inference_module
from mlops.core.paths import PROJECT_ROOT
from mlops.core.schema import NonNegativeFloat, PositiveInt, env_value
from mlops.core.settings import Settings, get_settings
from mlops.core.storage import write_text_atomic

HOST = "127.0.0.1"  # the default bind address (MLOPS_RUNTIME_HOST)
PLUGINS_DIR = PROJECT_ROOT / "plugins"
MODULE = "mlops.backends.local.runtime"
SWITCH_INTERVAL_S = 0.001  # GIL hand-over interval: the event loop waits at most this for the predictor

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- process control
def _configure_logging(runtime_dir: Path) -> None:
    """Send the runtime's and uvicorn's logs to ``runtime.log``.

    The handlers sit on these named loggers rather than the root, so the libraries' own INFO
    lines (s3fs, botocore) stay out of the request log; their warnings still reach stderr,
    which is ``runtime.log`` too when :func:`start_runtime` started the process.
    """
    handler = logging.FileHandler(log_file(runtime_dir), encoding="utf-8")
    handlers: list[logging.Handler] = [handler] + ([logging.StreamHandler()] if sys.stderr.isatty() else [])
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    for name in (MODULE, "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for each in handlers:
        each.setFormatter(formatter)


def serve(settings: Settings) -> int:
    """Bind ``MLOPS_RUNTIME_HOST:MLOPS_RUNTIME_PORT``, restore the endpoints and serve until SIGTERM/SIGINT."""
    import uvicorn

    runtime_dir = settings.runtime_dir
    runtime_dir.mkdir(parents=True, exist_ok=True)
    _configure_logging(runtime_dir)
    try:
        workers = env_value("MLOPS_RUNTIME_WORKERS", PositiveInt, PREDICTION_WORKERS)
        batch_wait = env_value("MLOPS_RUNTIME_BATCH_WAIT_MS", NonNegativeFloat, BATCH_WAIT_S * 1000) / 1000
    except ValueError as err:
        log.error("%s", err)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.runtime_host, settings.runtime_port))
        sock.listen(2048)  # listening at once: a concurrent start now fails to bind or listen
    except OSError as err:
        sock.close()
        log.error("cannot bind %s:%d: %s (is another runtime running?)", settings.runtime_host,
                  settings.runtime_port, err)
        return 1
    # Written only once the port is ours, so a losing concurrent start leaves the file alone.
    write_text_atomic(pid_file(runtime_dir), f"{os.getpid()}\n")
    try:
        table = EndpointTable(runtime_dir, inference_module())
        table.restore()
        batcher = PredictionBatcher(table.inference, workers=workers, batch_wait=batch_wait)
        # The prediction thread holds the GIL for long stretches of Python (pandas, scikit-learn);
        # CPython's default 5 ms hand-over made the event loop wait that long to read a request
        # or send an answer.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        freeze_heap()
        app = create_app(table, runtime_dir, batcher, code=content_digest())
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=5,
        )
        log.info("runtime %d serving %s:%d (%s) from %s", os.getpid(), settings.runtime_host,
                 settings.runtime_port, settings.runtime_url, runtime_dir)
        # uvicorn shuts down gracefully, then re-raises the signal to the handler it found:
        # make that handler a clean exit, so the finally below still runs.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _exit_cleanly)
        uvicorn.Server(config).run(sockets=[sock])
        batcher.stop()
        app.state.capture.stop()  # what is still buffered is written
    finally:
        _remove_pid_file(runtime_dir, os.getpid())
        log.info("runtime %d stopped", os.getpid())
    return 0


# Variables the runtime keeps from the environment of whoever starts it; everything else (an
# Airflow worker's AIRFLOW__*, AIRFLOW_CONN_*, _AIRFLOW_* among them) is left out.
RUNTIME_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
})
RUNTIME_ENV_PREFIXES = ("LC_", "MLOPS_", "AWS_")  # locale, project settings, AWS credentials/region/endpoint


def runtime_environment(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment the runtime starts with: an allowlist of ``environ``, plus ``settings``.

    Kept: :data:`RUNTIME_ENV_NAMES` (PATH, HOME, locale, TZ, TMPDIR, TLS certificates, proxies)
    and the ``LC_*``, ``MLOPS_*`` and ``AWS_*`` variables (the runtime reads ``s3://`` models
    with its own AWS credentials); ``PYTHONPATH`` is ``plugins/`` and then ``environ``'s entries;
    the ``MLOPS_*`` settings the runtime reads are set from ``settings``. Nothing else, in
    particular no Airflow variable: a task's environment blocks Airflow's database.

    :param environ: the starting process's environment; default ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    env = {name: value for name, value in environ.items()
           if name in RUNTIME_ENV_NAMES or name.startswith(RUNTIME_ENV_PREFIXES)}
    paths = [str(PLUGINS_DIR)] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(
        MLOPS_BACKEND=settings.backend,
        MLOPS_HOME=str(settings.home),
        MLOPS_DATA_URI=settings.data_uri,
        MLOPS_AWS_CONN_ID=settings.aws_conn_id,
        MLOPS_RUNTIME_PORT=str(settings.runtime_port),
        MLOPS_RUNTIME_HOST=settings.runtime_host,
    )
    env.pop("MLOPS_RUNTIME_URL", None)
    if settings.runtime_service_url:
        env["MLOPS_RUNTIME_URL"] = settings.runtime_service_url
    return env


def ping(settings: Settings) -> dict[str, Any] | None:
    """The runtime's ``/ping`` answer, or None when nothing answers in time.

    Raises ``RuntimeError`` when the URL is answered by something else, such as the runtime of
    another ``MLOPS_HOME``.
    """
    url = f"{settings.runtime_url}/ping"
    # Never through an HTTP(S)_PROXY: the runtime is on this machine or in the same network.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            info = json.loads(response.read())
    except (urllib.error.HTTPError, ValueError) as err:
        raise RuntimeError(f"{url} is answered by something other than the runtime") from err
    except OSError:
        return None
    served = info.get("runtime_dir") if isinstance(info, dict) else None
    if served is None:
        raise RuntimeError(f"{url} is answered by something other than the runtime")
    if served != str(settings.runtime_dir):
        raise RuntimeError(
            f"{url} is served by the runtime of {served}, not of {settings.runtime_dir}; "
            "give this MLOPS_HOME its own MLOPS_RUNTIME_PORT"
        )
    return info


def _runs_here(settings: Settings) -> bool:
    """Whether ``settings.runtime_url`` is on this machine's loopback (so this process may start it)."""
    host = urllib.parse.urlsplit(settings.runtime_url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def start_runtime(settings: Settings, timeout: float = 60.0) -> int:
    """Start the runtime of ``settings`` detached, unless it answers ``/ping`` already; return its pid.

    The process runs ``serve`` in a session of its own with :func:`runtime_environment` (never
    the caller's environment), in ``runtime_dir``, appending its output to ``runtime.log``; this
    waits until it answers ``/ping``. A runtime at a URL off this machine (``MLOPS_RUNTIME_URL``)
    is a service started elsewhere: it is only waited for.

    A runtime of this machine that runs other code than this process (the checkout changed, or
    was removed and cloned again, while it ran) is stopped and started again: it would serve new
    models with the old handlers. Its endpoints come back from its state, as after any restart.

    Raises ``RuntimeError`` naming the log when the runtime exits before answering or does not
    answer within ``timeout`` seconds, and when the URL is answered by something else.
    """
    info = ping(settings)
    if info is not None:
        if not _runs_here(settings) or info.get("code") == (code := _this_code()):
            return int(info["pid"])
        log.warning("the runtime %s (pid %s) runs other code (%s, this checkout: %s): restarting it",
                    settings.runtime_url, info["pid"], info.get("code") or "an older runtime", code)
        _stop_pid(int(info["pid"]), 10.0)
    process = None
    if _runs_here(settings):
        runtime_dir = settings.runtime_dir
        runtime_dir.mkdir(parents=True, exist_ok=True)
        with log_file(runtime_dir).open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", MODULE, "serve"], env=runtime_environment(settings), cwd=runtime_dir,
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = ping(settings)
        if info is not None:
            return int(info["pid"])
        # Exited: fine if a runtime started concurrently holds the port, else a real failure.
        if process is not None and process.poll() is not None and not _port_listening(settings.runtime_port):
            raise RuntimeError(
                f"the local runtime exited with code {process.returncode} before answering "
                f"{settings.runtime_url}/ping; see {log_file(settings.runtime_dir)}"
            )
        time.sleep(0.1)
    where = (f"see {log_file(settings.runtime_dir)}" if process is not None
             else "it is a service of its own (MLOPS_RUNTIME_URL): is it running?")
    raise RuntimeError(f"the model runtime did not answer {settings.runtime_url}/ping within {timeout:.0f}s; {where}")


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def read_pid(runtime_dir: Path) -> int | None:
    try:
        text = pid_file(runtime_dir).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _remove_pid_file(runtime_dir: Path, pid: int | None) -> None:
    """Remove the pid file if it still names ``pid`` (a newer runtime may own it)."""
    if read_pid(runtime_dir) == pid:
        pid_file(runtime_dir).unlink(missing_ok=True)


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it first when it is our own exited child (no zombies)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_runtime_process(pid: int) -> bool:
    """Guard against a recycled pid: on Linux, check the command line names this module."""
    if not Path("/proc/self").exists():
        return True
    try:
        return MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


def stop_runtime(runtime_dir: Path, timeout: float = 10.0) -> int | None:
    """Stop the runtime named by the pid file: SIGTERM, wait ``timeout`` s, then SIGKILL.

    Returns the pid stopped, or None when nothing ran (not an error). The pid file is removed.
    """
    pid = read_pid(runtime_dir)
    if pid is None:
        pid_file(runtime_dir).unlink(missing_ok=True)
        return None
    stopped = _stop_pid(pid, timeout)
    _remove_pid_file(runtime_dir, pid)
    return stopped


@functools.cache
def _this_code() -> str:
    """This process's code digest, once: every hosting call starts by checking the runtime."""
    return content_digest()


def _stop_pid(pid: int, timeout: float) -> int | None:
    """SIGTERM the runtime process ``pid``, SIGKILL it after ``timeout`` s; None if it was not one."""
    if not is_alive(pid) or not _is_runtime_process(pid):
        return None
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    return pid


def status(settings: Settings) -> dict[str, Any]:
    """Pid, URL and endpoints of the runtime, as far as it answers."""
    pid = read_pid(settings.runtime_dir)
    info: dict[str, Any] = {
        "running": pid is not None and is_alive(pid), "pid": pid, "url": settings.runtime_url,
        "runtime_dir": str(settings.runtime_dir), "endpoints": None,
    }
    if info["running"]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{settings.runtime_url}/admin/endpoints", timeout=5) as response:
                info["endpoints"] = [
                    {k: e[k] for k in ("name", "status", "config_name", "sha256")}
                    for e in json.loads(response.read())["endpoints"]
                ]
        except OSError as err:
            info["error"] = f"runtime does not answer: {err}"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("serve", "start", "stop", "status"))
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "serve":
        return serve(settings)
    if args.command == "start":
        try:
            pid = start_runtime(settings)
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"runtime {pid} serving {settings.runtime_url} (log {log_file(settings.runtime_dir)})")
        return 0
    if args.command == "stop":
        pid = stop_runtime(settings.runtime_dir)
        print(f"stopped runtime {pid}" if pid else "no runtime running")
        return 0
    info = status(settings)
    print(json.dumps(info, indent=2))
    return 0 if info["running"] else 3
