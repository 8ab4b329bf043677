"""Pipeline configs, idempotent resource names and environment settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlops.core.config import ConfigError, available_pipelines, load_pipeline
from mlops.core.naming import MAX_LEN, path_safe, prefixed, resource_name, run_name
from mlops.core.settings import get_settings

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
RUN_IDS = [
    "manual__2026-01-02T03:04:05.123456+00:00",
    "scheduled__2026-01-02T00:00:00+00:00",
    "asset_triggered__2026-01-02T00:00:00.000001+00:00",
    "backfill__2025-12-31T23:59:59+00:00",
]
VALID = {
    "name": "demo",
    "problem_type": "binary",
    "source": {"landing_prefix": "landing/demo"},
    "schema": {"columns": ["a", "y"], "target": "y"},
    "validation": {"suite": "demo"},
}


def write_config(directory: Path, name: str, content: dict | str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


# --- config -------------------------------------------------------------------------------------

def test_shipped_churn_config_loads():
    config = load_pipeline("churn")

    assert config.name == "churn"
    assert config.problem_type == "binary"
    assert config.target == "Churn?"
    assert config.schema["id_column"] == "Phone"
    assert "Day Mins" in config.feature_columns


def test_shipped_retail_config_loads():
    config = load_pipeline("retail")

    assert config.name == "retail"
    assert config.problem_type == "clustering"
    assert config.section("segmentation")["k_min"] == 2


def test_shipped_pipelines_are_available():
    assert {"churn", "retail"} <= set(available_pipelines())


def test_missing_config_error_lists_the_available_pipelines():
    with pytest.raises(ConfigError, match="no pipeline config 'nope'") as raised:
        load_pipeline("nope")

    assert "churn" in str(raised.value)
    assert "retail" in str(raised.value)


def test_missing_config_in_an_empty_directory_says_none_are_available(tmp_path):
    with pytest.raises(ConfigError, match=r"available: none"):
        load_pipeline("demo", directory=tmp_path)


def test_valid_config_in_another_directory_loads(tmp_path):
    path = write_config(tmp_path, "demo", VALID)

    config = load_pipeline("demo", directory=tmp_path)

    assert config.path == path
    assert config.target == "y"
    assert config.raw == VALID


@pytest.mark.parametrize("key", ["name", "problem_type", "source", "schema", "validation"])
def test_missing_required_key_is_named(tmp_path, key):
    write_config(tmp_path, "demo", {k: v for k, v in VALID.items() if k != key})

    with pytest.raises(ConfigError, match=f"missing required keys: {key}") as raised:
        load_pipeline("demo", directory=tmp_path)

    assert "demo.yaml" in str(raised.value)


def test_all_missing_required_keys_are_named_together(tmp_path):
    write_config(tmp_path, "demo", {"name": "demo", "problem_type": "binary"})

    with pytest.raises(ConfigError, match="missing required keys: source, schema, validation"):
        load_pipeline("demo", directory=tmp_path)


def test_unknown_problem_type_is_named(tmp_path):
    write_config(tmp_path, "demo", {**VALID, "problem_type": "ranking"})

    with pytest.raises(ConfigError, match="problem_type='ranking' is not one of binary, multiclass"):
        load_pipeline("demo", directory=tmp_path)


@pytest.mark.parametrize("problem_type", ["binary", "multiclass", "regression"])
def test_supervised_pipeline_without_target_is_rejected(tmp_path, problem_type):
    write_config(tmp_path, "demo", {**VALID, "problem_type": problem_type, "schema": {"columns": ["a"]}})

    with pytest.raises(ConfigError, match=f"schema.target is required for a {problem_type} pipeline"):
        load_pipeline("demo", directory=tmp_path)


def test_clustering_pipeline_needs_no_target(tmp_path):
    write_config(tmp_path, "demo", {**VALID, "problem_type": "clustering", "schema": {"columns": ["a"]}})

    assert load_pipeline("demo", directory=tmp_path).problem_type == "clustering"


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    write_config(tmp_path, "demo", "name: [unclosed\n")

    with pytest.raises(ConfigError, match=r"demo\.yaml: not valid YAML"):
        load_pipeline("demo", directory=tmp_path)


def test_top_level_that_is_not_a_mapping_is_rejected(tmp_path):
    write_config(tmp_path, "demo", "- a\n- b\n")

    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_pipeline("demo", directory=tmp_path)


def test_missing_section_is_named():
    config = load_pipeline("retail")

    with pytest.raises(ConfigError, match="section 'training' is missing"):
        config.section("training")


def test_section_that_is_not_a_mapping_is_rejected_when_the_file_loads(tmp_path):
    write_config(tmp_path, "demo", {**VALID, "training": "fast"})

    with pytest.raises(ConfigError, match=r"demo\.yaml: training must be a mapping, got str"):
        load_pipeline("demo", directory=tmp_path)


# --- naming -------------------------------------------------------------------------------------

def test_resource_name_is_stable():
    parts = ("churn_training", "train", RUN_IDS[0])

    assert resource_name(*parts) == resource_name(*parts)


@pytest.mark.parametrize("max_len", [20, 32, MAX_LEN])
def test_resource_name_fits_max_len_and_uses_only_allowed_characters(max_len):
    name = resource_name("a_very_long_dag_id_" * 5, "Train Step!", RUN_IDS[0], max_len=max_len)

    assert len(name) <= max_len
    assert re.fullmatch(r"[a-zA-Z0-9-]+", name)


def test_resource_name_differs_for_run_ids_that_share_the_truncated_prefix():
    dag_id = "customer_churn_training_pipeline_with_a_long_name"
    first = resource_name(dag_id, "train", RUN_IDS[0])
    second = resource_name(dag_id, "train", RUN_IDS[0].replace("05.123456", "05.123457"))

    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]  # same readable prefix
    assert first != second


def test_resource_name_differs_when_parts_are_split_differently():
    assert resource_name("a-b", "c") != resource_name("a", "b-c")


def test_resource_name_starts_with_the_readable_parts():
    assert resource_name("churn", "train").startswith("churn-train-")


@pytest.mark.parametrize("run_id", RUN_IDS)
@pytest.mark.parametrize("dag_id", ["churn_training", "x", "a" * 200, "retail__segmentation__"])
@pytest.mark.parametrize("step", ["train", "endpoint-config", "Batch Transform"])
def test_run_name_matches_the_sagemaker_name_pattern(dag_id, run_id, step):
    assert SAGEMAKER_NAME.fullmatch(run_name(dag_id, run_id, step))


def test_run_name_is_the_same_for_a_retry_and_differs_per_step():
    assert run_name("churn_training", RUN_IDS[0], "train") == run_name("churn_training", RUN_IDS[0], "train")
    assert run_name("churn_training", RUN_IDS[0], "train") != run_name("churn_training", RUN_IDS[0], "tune")


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_path_safe_removes_colons_and_pluses(run_id):
    safe = path_safe(run_id)

    assert ":" not in safe
    assert "+" not in safe
    assert "/" not in path_safe(run_id + "/../etc")


def test_path_safe_keeps_distinct_run_ids_distinct():
    assert len({path_safe(run_id) for run_id in RUN_IDS}) == len(RUN_IDS)


def test_prefixed_puts_the_prefix_in_front_when_it_fits():
    assert prefixed("mlops", "churn-classifier-prod", 63) == "mlops-churn-classifier-prod"


def test_prefixed_keeps_a_name_that_has_the_prefix_already():
    name = prefixed("mlops", run_name("deploy_model", RUN_IDS[0], "prod-config"), 63)

    assert prefixed("mlops", name, 63) == name
    assert prefixed("mlops", "mlops-churn-classifier", 63) == "mlops-churn-classifier"


@pytest.mark.parametrize("max_len", [32, 60, MAX_LEN])
def test_prefixed_cuts_a_long_name_to_max_len_with_a_stable_hash(max_len):
    name = run_name("autopilot_batch_predict", RUN_IDS[0], "transform")

    cut = prefixed("mlops", name, max_len)

    assert len(cut) <= max_len and SAGEMAKER_NAME.fullmatch(cut)
    assert re.fullmatch(r"mlops-autopilot-[a-z0-9-]*-[0-9a-f]{8}", cut)
    assert cut == prefixed("mlops", name, max_len) != prefixed("mlops", name.replace("transform", "transforn"), max_len)
    assert prefixed("mlops", cut, max_len) == cut


def test_prefixed_refuses_a_prefix_that_leaves_no_room_for_a_name():
    with pytest.raises(ValueError, match="room"):
        prefixed("a-very-long-installation-prefix", "job", 32)
    with pytest.raises(ValueError, match="room"):
        prefixed("", "job", 32)


# --- settings -----------------------------------------------------------------------------------

def test_settings_default_to_the_local_backend_with_data_under_mlops_home(mlops_home, monkeypatch):
    monkeypatch.delenv("MLOPS_BACKEND")
    monkeypatch.delenv("MLOPS_RUNTIME_PORT")
    monkeypatch.delenv("MLOPS_AWS_CONN_ID", raising=False)

    settings = get_settings()

    assert settings.backend == "local"
    assert settings.home == mlops_home.resolve()
    assert settings.data_uri == (mlops_home.resolve() / "data").as_uri()
    assert settings.data_uri.startswith("file://")
    assert settings.runtime_port == 8765
    assert settings.aws_conn_id == "aws_default"


def test_settings_read_the_environment(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS_BACKEND", " AWS ")
    monkeypatch.setenv("MLOPS_DATA_URI", "s3://bucket/prefix/")
    monkeypatch.setenv("MLOPS_RUNTIME_PORT", "9001")

    settings = get_settings()

    assert settings.backend == "aws"
    assert settings.data_uri == "s3://bucket/prefix"
    assert settings.runtime_url == "http://127.0.0.1:9001"


@pytest.mark.parametrize("value", ["gcp", "sagemaker", "x"])
def test_bad_backend_is_named(mlops_home, monkeypatch, value):
    monkeypatch.setenv("MLOPS_BACKEND", value)

    with pytest.raises(ValueError, match="MLOPS_BACKEND"):
        get_settings()


@pytest.mark.parametrize("value", ["/tmp/data", "gs://bucket", "http://example.com/data", "data"])
def test_bad_data_uri_is_named(mlops_home, monkeypatch, value):
    monkeypatch.setenv("MLOPS_DATA_URI", value)

    with pytest.raises(ValueError, match="MLOPS_DATA_URI"):
        get_settings()


@pytest.mark.parametrize("value", ["abc", "0", "65536", "-1", "80.5", ""])
def test_bad_runtime_port_is_named(mlops_home, monkeypatch, value):
    monkeypatch.setenv("MLOPS_RUNTIME_PORT", value)

    with pytest.raises(ValueError, match="MLOPS_RUNTIME_PORT"):
        get_settings()


def test_the_runtime_binds_loopback_and_is_reached_there_by_default(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS_RUNTIME_PORT", "9001")
    monkeypatch.delenv("MLOPS_RUNTIME_HOST", raising=False)
    monkeypatch.delenv("MLOPS_RUNTIME_URL", raising=False)

    settings = get_settings()

    assert (settings.runtime_host, settings.runtime_url) == ("127.0.0.1", "http://127.0.0.1:9001")


def test_a_runtime_service_binds_its_host_and_is_reached_at_its_url(mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS_RUNTIME_HOST", "172.18.0.5")
    monkeypatch.setenv("MLOPS_RUNTIME_URL", "http://model-runtime:8765/")

    settings = get_settings()

    assert (settings.runtime_host, settings.runtime_url) == ("172.18.0.5", "http://model-runtime:8765")


@pytest.mark.parametrize(("name", "value"), [("MLOPS_RUNTIME_HOST", "model-runtime"), ("MLOPS_RUNTIME_HOST", "::"),
                                             ("MLOPS_RUNTIME_URL", "model-runtime:8765")])
def test_bad_runtime_host_or_url_is_named(mlops_home, monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValueError, match=name):
        get_settings()
