"""Worker processes for the local backend's process pools: the batch transform's and the tuner's.

A task under an Airflow 3 worker is a poor parent for multiprocessing's defaults. Its environment
blocks Airflow's database (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=airflow-db-not-allowed:///``, set
by the task supervisor), so a child that imports Airflow dies at once; and its ``__main__`` is
the ``airflow`` command, which spawned children re-run, importing Airflow. :class:`WorkerPool` is
a ``concurrent.futures.ProcessPoolExecutor`` whose workers

* are fresh interpreters (multiprocessing's spawn) started with :func:`worker_environment`: this
  process's environment without Airflow's variables;
* do not re-run the parent's ``__main__``: they run functions of importable modules only (a
  script calling a pool needs no ``if __name__ == "__main__":`` guard either);
* write their stderr to a file each. When one dies, leaving the pool raises :class:`WorkerDied`
  naming the job, the worker's exit code or signal and the last lines it wrote, instead of
  ``concurrent.futures``' "terminated abruptly"; otherwise what they wrote is logged;
* may be started by a task of a Celery worker, whose task process is a fork of a prefork pool
  process and would otherwise pass for that pool process (:func:`_as_main_process`).

The functions a pool runs must not import Airflow either: nothing in a worker talks to Airflow.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import context, popen_spawn_posix, spawn, util
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AIRFLOW_PREFIXES = ("AIRFLOW", "_AIRFLOW")  # AIRFLOW__*, AIRFLOW_CONN_*, AIRFLOW_HOME, _AIRFLOW_PARSING_CONTEXT_*
STDERR_TAIL_LINES = 20
STDERR_TAIL_BYTES = 64 * 1024


class WorkerDied(RuntimeError):
    """A worker process of a :class:`WorkerPool` died while the pool was working."""


class WorkerPoolStopped(RuntimeError):
    """A :class:`WorkerPool` was stopped (its task was killed) while it was working."""


def worker_environment(extra: Mapping[str, str] | None = None,
                       environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) without Airflow's variables, plus ``extra``."""
    environ = os.environ if environ is None else environ
    env = {name: value for name, value in environ.items() if not name.startswith(AIRFLOW_PREFIXES)}
    env.update(extra or {})
    return env


class _WorkerPopen(popen_spawn_posix.Popen):
    """multiprocessing's spawn launch, with subprocess: the worker's own environment, its stderr
    in a file, and none of the parent's ``__main__``."""

    def _launch(self, process_obj: _WorkerProcess) -> None:
        from multiprocessing import resource_tracker

        tracker_fd = resource_tracker.getfd()
        self._fds.append(tracker_fd)
        prep_data = spawn.get_preparation_data(process_obj._name)
        # Without these the child does not run the parent's __main__ again as __mp_main__.
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        payload = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            context.reduction.dump(prep_data, payload)
            context.reduction.dump(process_obj, payload)
        finally:
            context.set_spawning_popen(None)
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        try:
            self._fds += [child_r, child_w]
            command = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            with process_obj.stderr_path.open("ab") as stderr:
                self.process = subprocess.Popen(command, pass_fds=self._fds, env=process_obj.environment,
                                                stderr=stderr)
            self.pid = self.process.pid
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as pipe:
                pipe.write(payload.getbuffer())
        finally:
            self.finalizer = util.Finalize(self, util.close_fds, (parent_r, parent_w))
            os.close(child_r)
            os.close(child_w)

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        # subprocess owns the child (one waiter); its return code is multiprocessing's: -signal.
        if self.returncode is None:
            self.returncode = self.process.poll() if flag == os.WNOHANG else self.process.wait()
        return self.returncode


class _WorkerProcess(context.SpawnProcess):
    environment: dict[str, str]
    stderr_path: Path

    def run(self) -> None:
        """The pool's worker loop; when it returns (the pool asked it to stop, every result sent),
        the process exits at once: an interpreter that loaded scikit-learn, pandas and scipy
        takes about 0.3 s of CPU to tear its modules down, which the pool's shutdown waits for."""
        super().run()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)

    @staticmethod
    def _Popen(process_obj: _WorkerProcess) -> _WorkerPopen:  # noqa: N802 - multiprocessing's name
        return _WorkerPopen(process_obj)

    def __getstate__(self) -> dict[str, Any]:  # the child needs neither: it runs with them already
        state = dict(self.__dict__)
        state.pop("environment", None)
        state.pop("stderr_path", None)
        return state


class _WorkerContext(context.SpawnContext):
    """A spawn context whose processes start as :class:`_WorkerProcess`; it keeps every one."""

    def __init__(self, environment: dict[str, str], stderr_dir: Path):
        super().__init__()
        self.environment = environment
        self.stderr_dir = stderr_dir
        self.workers: list[_WorkerProcess] = []

    def Process(self, *args: Any, **kwargs: Any) -> _WorkerProcess:  # noqa: N802 - multiprocessing's name
        process = _WorkerProcess(*args, **kwargs)
        process.environment = self.environment
        process.stderr_path = self.stderr_dir / f"worker-{len(self.workers) + 1}.stderr"
        self.workers.append(process)
        return process


class WorkerPool(ProcessPoolExecutor):
    """A process pool whose workers start cleanly under an Airflow worker and say why they died.

    Use it as a context manager: leaving it shuts the pool down (pending work is cancelled, running
    work finishes), turns a ``BrokenProcessPool`` into :class:`WorkerDied` naming ``job``, each
    worker that died with its exit code or signal and the last lines of its stderr, and logs what
    the workers wrote to stderr otherwise.

    :param job: what the pool works for, as an error should name it (``"transform score-1"``).
    :param max_workers: worker processes.
    :param initializer: run once in each worker, with ``initargs``.
    :param env: variables to set in the workers, on top of :func:`worker_environment`.

    While it works, the pool can be stopped (:meth:`stop`): a port's ``stop`` does it when the
    task is killed (:meth:`~mlops.backends.base.LongRunningPort.stop`, from the operator's
    ``on_kill``), so no worker outlives its task; leaving the pool then raises
    :class:`WorkerPoolStopped`.
    """

    def __init__(self, job: str, max_workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = (), env: Mapping[str, str] | None = None):
        from mlops.backends.base import add_stopper

        self.job = job
        self.stopped = False
        _as_main_process()
        self._stderr_dir = Path(tempfile.mkdtemp(prefix="mlops-workers-"))
        self._context = _WorkerContext(worker_environment(env), self._stderr_dir)
        super().__init__(max_workers, mp_context=self._context, initializer=initializer, initargs=initargs)
        add_stopper(self.stop)

    def stop(self) -> None:
        """Send every worker SIGTERM (safe in a signal handler: it neither waits nor locks); the
        work waiting on them fails, and leaving the pool raises :class:`WorkerPoolStopped`."""
        self.stopped = True
        for worker in self._context.workers:
            if worker.pid is not None and worker.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        log.warning("%s: stopped its %d worker process(es)", self.job, len(self._context.workers))

    def __exit__(self, exc_type, exc, traceback) -> bool:
        from mlops.backends.base import remove_stopper

        remove_stopper(self.stop)
        try:
            self.shutdown(wait=True, cancel_futures=True)  # every worker has exited: its exit code is known
            if self.stopped:
                raise WorkerPoolStopped(f"{self.job}: stopped, its worker processes ended: the task was killed") \
                    from exc
            if isinstance(exc, BrokenProcessPool):
                raise WorkerDied(f"{self.job}: {self._deaths()}") from exc
            for worker in self._context.workers:
                if tail := _tail(worker.stderr_path):
                    log.warning("%s: worker process %d wrote to stderr; the last lines:\n%s",
                                self.job, worker.pid, tail)
        finally:
            shutil.rmtree(self._stderr_dir, ignore_errors=True)
        return False

    def _deaths(self) -> str:
        """Each worker that died on its own: pid, exit code or signal, last lines of its stderr."""
        workers = [worker for worker in self._context.workers if worker.exitcode is not None]
        # A broken pool sends SIGTERM to the workers still running; the ones that broke it died otherwise.
        died = [worker for worker in workers if worker.exitcode != -signal.SIGTERM] or workers
        if not died:
            return "a worker process died before it started"
        return "\n".join(
            f"worker process {worker.pid} {_exit_reason(worker.exitcode)}; "
            + (f"the last lines it wrote to stderr:\n{tail}" if (tail := _tail(worker.stderr_path))
               else "it wrote nothing to stderr")
            for worker in died
        )


def _as_main_process() -> None:
    """Let this process start workers when it holds a Celery pool process's multiprocessing identity.

    Celery's prefork pool (billiard) installs each pool process as multiprocessing's current
    process: a daemon, with billiard's authentication key. The task process that Airflow's
    supervisor forks from a pool process inherits that object without being that process, and
    multiprocessing then refuses to start children ("daemonic processes are not allowed to have
    children") or to hand them the key ("Pickling an AuthenticationString object is disallowed").
    So the inherited object loses the flag and gets the key as multiprocessing's own type, as a
    main process has them. The workers do not outlive this process: they are shut down when the
    pool is left and stopped when the task is killed (:meth:`WorkerPool.stop`).
    """
    from multiprocessing import process

    current = process.current_process()
    if isinstance(current, process.BaseProcess):
        return  # multiprocessing's own: a main process, or one it started (whose rules stand)
    log.info("process %d holds a Celery pool process's multiprocessing identity (%s): it starts its "
             "workers as a main process", os.getpid(), type(current).__module__)
    current._config["daemon"] = False
    current._config["authkey"] = process.AuthenticationString(bytes(current._config["authkey"]))


def _exit_reason(exitcode: int) -> str:
    if exitcode >= 0:
        return f"exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = "a signal"
    return f"was killed by {name} (signal {-exitcode})"


def _tail(path: Path) -> str:
    """The last :data:`STDERR_TAIL_LINES` lines of ``path`` ("" when it is empty or missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])
