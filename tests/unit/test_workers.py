"""The local backend's worker pool (the batch transform's and the tuner's): workers start without
Airflow's variables, and a worker that dies is named with its exit code or signal and the end of
its stderr. That the transform and the tuner run cleanly inside a process set up like an Airflow
task is tested in test_transform.py and test_training.py."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest

from mlops.backends.local.workers import STDERR_TAIL_LINES, WorkerDied, WorkerPool, worker_environment
from testkit.airflow_task import TASK_ENVIRONMENT
from testkit.workers import write_then_die


def test_the_worker_environment_leaves_out_airflow_variables_only():
    environ = {**TASK_ENVIRONMENT, "AIRFLOW_CONN_AWS_DEFAULT": "aws://", "AIRFLOW_HOME": "/opt/airflow",
               "PATH": "/usr/bin", "MLOPS_HOME": "/srv/mlops", "OMP_NUM_THREADS": "8"}

    env = worker_environment({"OMP_NUM_THREADS": "1"}, environ)

    assert env == {"PATH": "/usr/bin", "MLOPS_HOME": "/srv/mlops", "OMP_NUM_THREADS": "1"}


def test_workers_start_without_airflow_variables_and_with_the_pools_own(monkeypatch):
    for name, value in {**TASK_ENVIRONMENT, "MLOPS_MARKER": "kept"}.items():
        monkeypatch.setenv(name, value)

    with WorkerPool("job-env", 2, env={"OMP_NUM_THREADS": "1"}) as pool:
        seen = {name: pool.submit(os.getenv, name).result()
                for name in [*TASK_ENVIRONMENT, "MLOPS_MARKER", "OMP_NUM_THREADS"]}

    assert seen == {**dict.fromkeys(TASK_ENVIRONMENT), "MLOPS_MARKER": "kept", "OMP_NUM_THREADS": "1"}


def _fork_a_task_that_runs_a_pool(result_path: str) -> None:
    """What a Celery prefork pool process does with an Airflow task: its supervisor forks the task."""
    pid = os.fork()
    if pid == 0:
        try:
            with WorkerPool("job-celery", 2) as pool:
                pids = {pool.submit(os.getpid).result() for _ in range(4)}
            Path(result_path).write_text("ok" if os.getpid() not in pids else "ran in the task process")
        except BaseException as err:  # noqa: BLE001 - reported to the test, which fails with it
            Path(result_path).write_text(repr(err))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_a_task_forked_from_a_celery_prefork_pool_process_can_start_workers(tmp_path):
    """A billiard pool process is daemonic and holds billiard's key; the task inherits both."""
    import billiard

    result = tmp_path / "result"
    pool_process = billiard.Process(target=_fork_a_task_that_runs_a_pool, args=(str(result),), daemon=True)
    pool_process.start()
    pool_process.join(120)

    assert result.read_text() == "ok"


def test_a_worker_that_exits_is_named_with_its_exit_code_and_its_last_stderr_lines():
    with pytest.raises(WorkerDied) as died, WorkerPool("job-exit", 2) as pool:
        pool.submit(write_then_die, "loading the model\nno space left on device", 3).result()

    assert str(died.value).startswith("job-exit: worker process ")
    assert "exited with code 3; the last lines it wrote to stderr:\nloading the model\nno space left on device" \
        in str(died.value)


def test_a_worker_killed_by_a_signal_is_named_with_the_signal():
    with pytest.raises(WorkerDied, match=r"job-kill: worker process \d+ was killed by SIGKILL \(signal 9\); "
                                         r"the last lines it wrote to stderr:\nkilled") as died, \
            WorkerPool("job-kill", 2) as pool:
        pool.submit(write_then_die, "killed", -signal.SIGKILL).result()

    assert "memory" not in str(died.value)


def test_only_the_last_lines_of_a_dead_workers_stderr_are_reported():
    lines = [f"line {number}" for number in range(100)]

    with pytest.raises(WorkerDied) as died, WorkerPool("job-long", 1) as pool:
        pool.submit(write_then_die, "\n".join(lines), 1).result()

    assert str(died.value).endswith("\n".join(lines[-STDERR_TAIL_LINES:]))
    assert "line 79\n" not in str(died.value)


def test_what_workers_wrote_to_stderr_is_logged_when_the_pool_closes(caplog):
    with caplog.at_level(logging.WARNING, logger="mlops.backends.local.workers"), \
            WorkerPool("job-warns", 1) as pool:
        pool.submit(os.write, 2, b"UserWarning: something to know\n").result()

    assert "job-warns: worker process" in caplog.text
    assert "UserWarning: something to know" in caplog.text


def test_a_finished_worker_exits_at_once_with_code_0_and_its_buffered_output_written(caplog):
    """A worker leaves without the interpreter's teardown (os._exit): what it wrote but had not
    flushed must still reach its stderr file, and its exit code stays 0."""
    from testkit.workers import write_unflushed

    with caplog.at_level(logging.WARNING, logger="mlops.backends.local.workers"), \
            WorkerPool("job-buffered", 1, env={"PYTHONUNBUFFERED": ""}) as pool:  # Python's buffers, as by default
        pid = pool.submit(write_unflushed, "a line still in the buffer").result()

    assert [worker.exitcode for worker in pool._context.workers] == [0]
    assert f"job-buffered: worker process {pid} wrote to stderr" in caplog.text
    assert "a line still in the buffer" in caplog.text


def test_a_ports_stop_ends_the_workers_of_this_process_and_the_work_fails_saying_so(tmp_path):
    """The local transform's stop (the base port's: what an operator's on_kill calls) ends every
    live pool's workers; the work waiting on them fails with WorkerPoolStopped, not WorkerDied."""
    from concurrent.futures.process import BrokenProcessPool

    from mlops.backends.local.automl import FlamlAutoML
    from mlops.backends.local.transform import LocalBatchTransform
    from mlops.backends.local.workers import WorkerPoolStopped
    from testkit.workers import wait_forever

    pid_file = tmp_path / "worker.pid"
    with pytest.raises(WorkerPoolStopped, match=r"job-stop: stopped, its worker processes ended: the task was killed"), \
            WorkerPool("job-stop", 1) as pool:
        future = pool.submit(wait_forever, str(pid_file))
        while not pid_file.exists():  # the worker is busy once it wrote its pid
            assert not future.done(), future.exception()
            time.sleep(0.01)
        worker = int(pid_file.read_text())
        LocalBatchTransform(FlamlAutoML(tmp_path / "automl")).stop(None)
        with pytest.raises(BrokenProcessPool):
            future.result()

    stat = Path(f"/proc/{worker}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # ended (a zombie at most)


def test_a_finished_pool_is_not_stopped_by_a_later_kill(tmp_path):
    from mlops.backends.base import LongRunningPort

    with WorkerPool("job-done", 1) as pool:
        assert pool.submit(os.getpid).result() > 0

    LongRunningPort().stop(None)  # the pool left the registry when it finished
    assert not pool.stopped
