"""s3_ingest: a deferrable wait for landed files, a schema check, the raw partition published
atomically, and only then the originals moved to processed/ -- losing nothing at any failure."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from mlops.core import partitions
from mlops.core.entrypoints import generators_module
from mlops.core.storage import data_path
from mlops.operators.s3 import LandingFilesSensor, LandingToRawOperator
from mlops.triggers.object_storage import LandingFilesTrigger, list_landed_files

DS = "2026-01-02"


def run_context(try_number: int = 1, run_type: str = "scheduled", run_after: datetime | None = None,
                outlet_events: dict | None = None) -> dict:
    """The parts of a task's context these operators read."""
    return {"ti": SimpleNamespace(try_number=try_number),
            "dag_run": SimpleNamespace(run_type=run_type, run_after=run_after or datetime(2026, 1, 2, 9, tzinfo=UTC)),
            "outlet_events": outlet_events if outlet_events is not None else {}}


CONTEXT = run_context()


@pytest.fixture(scope="module")
def churn_files():
    generate = generators_module().churn
    return [generate(120, seed=seed) for seed in (1, 2, 3)]


def land(frame: pd.DataFrame, name: str, use_case: str = "churn") -> str:
    path = data_path("landing", use_case, *name.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        frame.to_csv(handle, index=False)
    return str(path)


def landed(use_case: str = "churn") -> list[str]:
    return list_landed_files(str(data_path("landing", use_case)), "*.csv")


def processed(use_case: str = "churn") -> list[str]:
    root = data_path("processed", use_case, f"ds={DS}")
    return sorted(str(p)[len(str(root)) + 1:] for p in root.rglob("*") if p.is_file()) if root.exists() else []


def publish(files: list[str], try_number: int = 1) -> dict:
    operator = LandingToRawOperator(task_id="publish", use_case="churn", files=files, ds=DS)
    return operator.execute(run_context(try_number))


def partition() -> pd.DataFrame:
    return partitions.read_partition(partitions.partition_path("churn", DS))


def sensor(**kwargs) -> LandingFilesSensor:
    kwargs.setdefault("timeout", 600)
    return LandingFilesSensor(task_id="wait", prefix="landing/churn", pattern="*.csv", poke_interval=5, **kwargs)


# --- waiting ------------------------------------------------------------------------------------

def test_the_sensor_returns_the_landed_files_without_deferring(mlops_home, churn_files):
    uris = [land(churn_files[1], "b.csv"), land(churn_files[0], "a.csv")]
    land(churn_files[2], "notes.txt")

    assert sensor().execute(CONTEXT) == sorted(uris)


def test_with_nothing_landed_the_sensor_defers_to_a_trigger_that_serialises_to_json(mlops_home):
    with pytest.raises(TaskDeferred) as deferred:
        sensor(timeout=900).execute(CONTEXT)

    trigger = deferred.value.trigger
    assert isinstance(trigger, LandingFilesTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=900)
    classpath, kwargs = trigger.serialize()
    rebuilt = getattr(importlib.import_module(classpath.rsplit(".", 1)[0]), classpath.rsplit(".", 1)[1])(
        **json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == trigger.serialize()
    assert kwargs["uri"] == str(data_path("landing", "churn")) and kwargs["pattern"] == "*.csv"


def test_on_s3_the_sensor_defers_to_the_amazon_providers_s3_key_trigger(mlops_home, monkeypatch):
    from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger

    monkeypatch.setenv("MLOPS_DATA_URI", "s3://mlops-data/prod")
    monkeypatch.setattr("mlops.operators.s3._landing_files", lambda prefix, pattern: [])

    with pytest.raises(TaskDeferred) as deferred:
        sensor().execute(CONTEXT)

    trigger = deferred.value.trigger
    assert isinstance(trigger, S3KeyTrigger)
    assert (trigger.bucket_name, trigger.bucket_key, trigger.wildcard_match) == (
        "mlops-data", "prod/landing/churn/*.csv", True)
    assert trigger.aws_conn_id == "aws_default"
    json.dumps(trigger.serialize()[1])


def run_trigger(trigger: LandingFilesTrigger) -> dict:
    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first_event())


def test_the_trigger_fires_when_files_land_while_it_waits(mlops_home, churn_files):
    trigger = LandingFilesTrigger(str(data_path("landing", "churn")), "*.csv", poke_interval=0.05, timeout=30)
    timer = threading.Timer(0.3, land, (churn_files[0], "late.csv"))
    timer.start()

    event = run_trigger(trigger)

    timer.join()
    assert event["status"] == "success"
    assert [uri.rsplit("/", 1)[1] for uri in event["files"]] == ["late.csv"]


def test_the_trigger_reports_a_timeout_when_nothing_lands(mlops_home):
    trigger = LandingFilesTrigger(str(data_path("landing", "churn")), "*.csv", poke_interval=0.05, timeout=0.2)

    assert run_trigger(trigger)["status"] == "timeout"


def test_when_the_trigger_fires_the_sensor_returns_what_is_there_now(mlops_home, churn_files):
    uri = land(churn_files[0], "a.csv")

    assert sensor().execute_complete(CONTEXT, {"status": "success", "files": []}) == [uri]


def test_a_trigger_timeout_fails_the_sensor_or_skips_it_with_soft_fail(mlops_home):
    with pytest.raises(AirflowSensorTimeout):
        sensor().execute_complete(CONTEXT, {"status": "timeout", "message": "nothing"})
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": {"status": "timeout"}}, CONTEXT)


def test_files_below_the_prefix_match_the_pattern_on_their_relative_path(mlops_home, churn_files):
    nested = land(churn_files[0], "2026/01/a.csv")
    land(churn_files[1], "2026/01/a.csv.tmp")

    assert landed() == [nested]
    assert list_landed_files(str(data_path("landing", "churn")), "2026/*/*.csv") == [nested]


def test_a_triggered_run_with_nothing_landed_is_skipped_at_once(mlops_home):
    with pytest.raises(AirflowSkipException, match="looks once"):
        sensor().execute(run_context(run_type="manual"))


def test_a_triggered_run_finds_what_has_landed(mlops_home, churn_files):
    uri = land(churn_files[0], "a.csv")

    assert sensor().execute(run_context(run_type="manual")) == [uri]


def test_a_triggered_run_told_to_wait_defers_like_a_scheduled_one(mlops_home):
    with pytest.raises(TaskDeferred):
        sensor(wait_on_manual="True").execute(run_context(run_type="manual"))


# --- publishing ---------------------------------------------------------------------------------

def test_landed_files_are_published_then_moved_to_processed(mlops_home, churn_files):
    files = [land(churn_files[0], "a.csv"), land(churn_files[1], "b.csv")]

    result = publish(files)

    assert result["rows"] == 240 and result["files"] == 2 and result["moved"] == 2
    expected = pd.concat(churn_files[:2], ignore_index=True)
    pd.testing.assert_frame_equal(partition().sort_values("Phone", ignore_index=True),
                                  expected.sort_values("Phone", ignore_index=True), check_dtype=False)
    assert landed() == [] and processed() == ["a.csv", "b.csv"]
    manifest = partitions.read_manifest(partitions.partition_path("churn", DS))
    assert [e["sha256"][:8] for e in manifest["files"]] and all(e["processed"].endswith(".csv")
                                                                  for e in manifest["files"])


def test_without_a_logical_date_the_partition_is_dated_by_run_after(mlops_home, churn_files):
    operator = LandingToRawOperator(task_id="publish", use_case="churn", files=[land(churn_files[0], "a.csv")])

    result = operator.execute(run_context(run_after=datetime(2026, 3, 4, 23, 30, tzinfo=UTC)))

    assert result["ds"] == "2026-03-04"
    assert result["partition_uri"].endswith("raw/churn/ds=2026-03-04")
    assert len(partitions.read_partition(result["partition_uri"])) == 120


def test_the_asset_event_announces_the_published_partition(mlops_home, churn_files):
    from mlops.core.assets import raw_data

    events = {raw_data("churn"): SimpleNamespace(extra={})}
    operator = LandingToRawOperator(task_id="publish", use_case="churn", files=[land(churn_files[0], "a.csv")],
                                    ds=DS, outlets=[raw_data("churn")])

    result = operator.execute(run_context(outlet_events=events))

    extra = events[raw_data("churn")].extra
    committed = partitions.reference(result["partition_uri"])
    assert extra == {"partition_uri": committed["uri"], "digest": committed["digest"], "ds": DS, "rows": 120,
                     "use_case": "churn"}


def test_files_another_run_published_meanwhile_skip_this_run(mlops_home, churn_files):
    files = [land(churn_files[0], "a.csv")]
    publish(files)  # the other run, first to get its turn
    before = partitions.read_manifest(partitions.partition_path("churn", DS))

    with pytest.raises(AirflowSkipException, match="another run published them"):
        publish(files)

    assert partitions.read_manifest(partitions.partition_path("churn", DS)) == before


def test_a_retry_whose_files_a_run_of_another_date_published_meanwhile_is_skipped(mlops_home, churn_files):
    """Try 1 failed before its commit; while it waited for its retry, a scheduled run (another
    date) published the files and moved them: the retry skips, it does not fail."""
    files = [land(churn_files[0], "a.csv")]
    other = LandingToRawOperator(task_id="publish", use_case="churn", files=files, ds="2026-03-02")
    other.execute(run_context())

    with pytest.raises(AirflowSkipException, match="no earlier try moved any to .*: another run published them"):
        publish(files, try_number=2)

    assert not partitions.partition_path("churn", DS).exists()  # nothing written for this date


def test_a_file_with_wrong_columns_fails_naming_it_and_nothing_moves(mlops_home, churn_files):
    good = land(churn_files[0], "good.csv")
    bad = land(churn_files[1].drop(columns=["Day Mins"]), "bad.csv")

    with pytest.raises(ValueError, match="bad.csv"):
        publish([good, bad])

    assert landed() == [bad, good]
    with pytest.raises(partitions.PartitionNotFound):
        partition()


def test_a_non_numeric_value_in_a_numeric_column_fails_naming_file_and_column(mlops_home, churn_files):
    frame = churn_files[0].astype({"CustServ Calls": object})
    frame.loc[5, "CustServ Calls"] = "three"
    bad = land(frame, "typo.csv")

    with pytest.raises(ValueError, match=r"typo.csv: column 'CustServ Calls' should be numeric.*'three'"):
        publish([bad])

    assert landed() == [bad]


def test_a_crash_before_the_commit_moves_nothing_and_keeps_the_old_partition(mlops_home, churn_files):
    publish([land(churn_files[0], "a.csv")])
    before = partition()
    newer = land(churn_files[1], "b.csv")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(partitions, "commit", crash)
        with pytest.raises(OSError, match="disk full"):
            publish([newer], try_number=2)

    pd.testing.assert_frame_equal(partition(), before)
    assert landed() == [newer] and processed() == ["a.csv"]


def test_a_crash_during_the_moves_loses_nothing_and_the_rerun_finishes_the_job(mlops_home, churn_files):
    files = [land(frame, f"{name}.csv") for name, frame in zip("abc", churn_files)]
    real_move, moves = LandingToRawOperator._move, []

    def move_then_crash(path, target, digest):  # the first move succeeds, the worker dies on the second
        moves.append(path)
        if len(moves) == 2:
            raise ConnectionError("worker lost")
        real_move(path, target, digest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LandingToRawOperator, "_move", staticmethod(move_then_crash))
        with pytest.raises(ConnectionError):
            publish(files)
    assert len(partition()) == 360  # committed before the moves
    assert processed() == ["a.csv"] and len(landed()) == 2

    result = publish(files, try_number=2)  # the sensor's list, partly stale

    assert result["rows"] == 360 and result["new_files"] == 0  # nothing re-read, nothing twice
    assert partition()["Phone"].is_unique
    assert landed() == [] and processed() == ["a.csv", "b.csv", "c.csv"]


def test_a_copy_that_reached_processed_before_a_crash_is_recognised(mlops_home, churn_files):
    publish([land(churn_files[0], "a.csv")])
    again = land(churn_files[1], "b.csv")
    target = data_path("processed", "churn", f"ds={DS}", "b.csv")
    target.write_bytes(ObjectStoragePath(again).read_bytes())  # copied, then the worker died

    result = publish([again], try_number=2)

    assert result["rows"] == 240 and landed() == [] and processed() == ["a.csv", "b.csv"]


def test_a_second_run_of_the_day_adds_its_files_and_reuses_the_published_parts(mlops_home, churn_files):
    publish([land(churn_files[0], "morning.csv")])
    first = partitions.read_manifest(partitions.partition_path("churn", DS))["files"]

    result = publish([land(churn_files[1], "evening.csv")], try_number=1)

    files = partitions.read_manifest(partitions.partition_path("churn", DS))["files"]
    assert result["rows"] == 240 and result["new_files"] == 1
    assert first[0]["file"] in {f["file"] for f in files}
    assert processed() == ["evening.csv", "morning.csv"]


def test_the_same_content_landed_twice_is_published_once(mlops_home, churn_files):
    files = [land(churn_files[0], "a.csv"), land(churn_files[0], "copy-of-a.csv")]

    result = publish(files)

    assert result["rows"] == 120 and landed() == []
    assert processed() == ["a.csv", "copy-of-a.csv"]


def test_a_new_file_with_the_name_of_a_processed_one_keeps_both(mlops_home, churn_files):
    publish([land(churn_files[0], "daily.csv")])

    result = publish([land(churn_files[1], "daily.csv")], try_number=1)

    assert result["rows"] == 240
    (renamed,) = set(processed()) - {"daily.csv"}
    assert len(processed()) == 2 and renamed.startswith("daily-") and renamed.endswith(".csv")


def test_a_partitions_digest_changes_only_with_its_content(mlops_home, churn_files):
    publish([land(churn_files[0], "a.csv")])
    first = partitions.reference(partitions.partition_path("churn", DS))
    publish([land(churn_files[0], "a.csv")], try_number=2)  # same content again: published once
    same = partitions.reference(partitions.partition_path("churn", DS))
    publish([land(churn_files[1], "b.csv")])

    changed = partitions.reference(partitions.partition_path("churn", DS))
    assert first["digest"] == same["digest"] != changed["digest"]


def test_a_rerun_with_nothing_new_republishes_the_same_partition(mlops_home, churn_files):
    files = [land(churn_files[0], "a.csv")]
    publish(files)
    before = partition()

    result = publish(files, try_number=2)  # the files are already in processed/

    assert result["rows"] == 120 and result["new_files"] == 0
    pd.testing.assert_frame_equal(partition(), before)
