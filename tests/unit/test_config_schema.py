"""The typed schema of settings and pipeline configs: every bad key or variable is named, with
its value, in a message of bounded length."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlops.core.config import ConfigError, load_pipeline
from mlops.core.config_schema import PipelineSpec
from mlops.core.schema import MAX_ERRORS, MAX_VALUE_CHARS, env_value
from mlops.core.settings import Environment, environment_variables, get_settings
from mlops.dag_defaults import queue_name

SHIPPED = Path(__file__).resolve().parents[2] / "include" / "pipelines"


def shipped(name: str) -> dict:
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())


def load_with(tmp_path, raw: dict):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    return load_pipeline("p", directory=tmp_path)


def changed(name: str, dotted_key: str, value) -> dict:
    raw = copy.deepcopy(shipped(name))
    *parents, last = dotted_key.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


# --- pipeline configs ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["churn", "retail"])
def test_every_key_of_the_shipped_configs_is_in_the_schema(name):
    spec = PipelineSpec.model_validate(shipped(name))

    assert spec.name == name


def test_the_loaded_config_carries_its_typed_sections():
    spec = load_pipeline("churn").spec

    assert spec.training.k_folds == 5
    assert spec.endpoint.prod.traffic_shifting.type == "canary"
    assert spec.training.search_space["max_iter"].high == 300
    assert spec.schema_.target == "Churn?"


@pytest.mark.parametrize(("key", "where"), [
    ("typo_section", "unknown key(s) typo_section"),
    ("training.k_fold", "training: unknown key(s) k_fold"),
    ("endpoint.staging.max_concurency", "endpoint.staging: unknown key(s) max_concurency"),
    ("endpoint.prod.traffic_shifting.step", "endpoint.prod.traffic_shifting: unknown key(s) step"),
    ("source.keyspaces.consistency", "source.keyspaces: unknown key(s) consistency"),
    ("validation.drift.psi", "validation.drift: unknown key(s) psi"),
])
def test_an_unknown_key_is_refused_naming_it(tmp_path, key, where):
    with pytest.raises(ConfigError, match=r"p\.yaml: .*" + where.replace("(", r"\(").replace(")", r"\)")):
        load_with(tmp_path, changed("churn", key, 1))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("training.k_folds", 1, "training.k_folds=1: input should be greater than or equal to 2"),
    ("training.k_folds", "5", "training.k_folds='5': input should be a valid integer"),
    ("training.holdout_fraction", 1.5, "training.holdout_fraction=1.5: input should be less than 1"),
    ("endpoint.test.requests", True, "endpoint.test.requests=True: input should be a valid integer"),
    ("endpoint.prod.traffic_shifting.type", "blue", "endpoint.prod.traffic_shifting.type='blue' is not one of "
                                                    "canary, linear, all_at_once"),
    ("endpoint.prod.data_capture.sampling_percentage", 120, "sampling_percentage=120: input should be less than"),
    ("validation.extra_columns", "ignore", "validation.extra_columns='ignore' is not one of fail, warn"),
    ("validation.row_count.max_drop", 2, "validation.row_count.max_drop=2: input should be less than or equal to 1"),
    ("approval.mode", "auto", "approval.mode='auto' is not one of manual, policy"),
    ("approval.model", {"holdout_roc_auc": 0.8}, "approval.model: threshold keys are min_<metric> or max_<metric>"),
    ("autopilot.response_keys", "probability", "autopilot.response_keys='probability': input should be a valid list"),
    ("notifications.events", ["deployed"], r"notifications.events=['deployed'] must be a non-empty list"),
    ("training.search_space.max_iter", {"type": "int", "low": 300, "high": 50},
     "training.search_space.max_iter: low 300.0 is above high 50.0"),
    ("training.search_space.learning_rate", {"type": "float", "low": 0, "high": 1, "log": True},
     "training.search_space.learning_rate: a log scale needs low > 0"),
])
def test_a_bad_value_is_refused_naming_the_key_and_the_value(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, changed("churn", key, value))

    assert message in str(raised.value)


def test_segmentation_range_is_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"segmentation: k_min 9 is above k_max 8"):
        load_with(tmp_path, changed("retail", "segmentation.k_min", 9))


def test_a_huge_bad_value_gives_a_bounded_message(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, changed("churn", "registry.group", ["x" * 100_000]))

    message = str(raised.value)
    assert "registry.group=['xxx" in message
    assert len(message) < len(str(tmp_path)) + 200


def test_thousands_of_problems_give_a_bounded_message_that_counts_the_rest(tmp_path):
    raw = shipped("churn")
    raw["training"]["search_space"] = {f"p{i}": {"type": "int", "low": 2, "high": 1} for i in range(3000)}

    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, raw)

    message = str(raised.value)
    assert message.count("is above high") == MAX_ERRORS
    assert f"and {3000 - MAX_ERRORS} more" in message
    assert len(message) < len(str(tmp_path)) + MAX_ERRORS * (MAX_VALUE_CHARS + 80)


def test_thousands_of_unknown_keys_are_counted_not_all_listed(tmp_path):
    raw = shipped("churn")
    raw["source"].update({f"column_{i}": 1 for i in range(5000)})

    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, raw)

    message = str(raised.value)
    assert "source: unknown key(s) column_0, column_1" in message
    assert "(5000 in all)" in message
    assert len(message) < 500


def test_an_unknown_key_of_any_length_is_named_cut_to_a_bounded_length(tmp_path):
    raw = shipped("churn")
    raw["training"]["k" * 20_000] = 1
    raw["training"]["search_space"]["p" * 20_000] = {"type": "int", "low": 2, "high": 1}

    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, raw)

    message = str(raised.value)
    assert "training: unknown key(s) kkkk" in message and "training.search_space.pppp" in message
    assert len(message) < len(str(tmp_path)) + 300


def test_the_schema_knows_every_notification_event_and_no_other():
    from mlops.core.config_schema import NOTIFICATION_EVENTS
    from mlops.notifications import EVENTS

    assert NOTIFICATION_EVENTS == EVENTS


# --- environment settings -----------------------------------------------------------------------

def test_every_settings_variable_is_read_by_the_environment_model():
    assert set(environment_variables()) == {
        "MLOPS_BACKEND", "MLOPS_HOME", "MLOPS_DATA_URI", "MLOPS_AWS_CONN_ID", "MLOPS_RUNTIME_PORT",
        "MLOPS_AWS_REGION", "MLOPS_SAGEMAKER_ROLE", "MLOPS_NAME_PREFIX", "MLOPS_INSTANCE_TYPE",
        "MLOPS_RUNTIME_HOST", "MLOPS_RUNTIME_URL"}


def test_settings_come_from_the_mapping_given(tmp_path):
    settings = get_settings({"MLOPS_HOME": str(tmp_path), "MLOPS_BACKEND": "aws", "MLOPS_NAME_PREFIX": "acme",
                             "MLOPS_SAGEMAKER_ROLE": "arn:aws:iam::123456789012:role/r"})

    assert (settings.backend, settings.home, settings.name_prefix) == ("aws", tmp_path.resolve(), "acme")
    assert settings.sagemaker_role_arn == "arn:aws:iam::123456789012:role/r"
    assert settings.data_uri == (tmp_path.resolve() / "data").as_uri()


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("MLOPS_BACKEND", "gcp", "MLOPS_BACKEND='gcp' is not one of local, aws"),
    ("MLOPS_RUNTIME_PORT", "80.5", "MLOPS_RUNTIME_PORT='80.5' is not a TCP port number"),
    ("MLOPS_RUNTIME_PORT", "65536", "MLOPS_RUNTIME_PORT='65536': input should be less than 65536"),
    ("MLOPS_DATA_URI", "gs://b", "MLOPS_DATA_URI='gs://b' must start with file:// or s3://"),
    ("MLOPS_RUNTIME_HOST", "model-runtime", "MLOPS_RUNTIME_HOST='model-runtime' is not an IPv4 address to bind"),
    ("MLOPS_RUNTIME_URL", "rt:8765", "MLOPS_RUNTIME_URL='rt:8765' must start with http:// or https://"),
])
def test_a_bad_variable_is_named_with_its_value(tmp_path, variable, value, message):
    with pytest.raises(ValueError) as raised:
        get_settings({"MLOPS_HOME": str(tmp_path), variable: value})

    assert str(raised.value) == message


def test_a_long_bad_variable_gives_a_bounded_message(tmp_path):
    with pytest.raises(ValueError) as raised:
        get_settings({"MLOPS_HOME": str(tmp_path), "MLOPS_DATA_URI": "x" * 50_000})

    assert len(str(raised.value)) <= len("MLOPS_DATA_URI=") + MAX_VALUE_CHARS + len(" must start with file:// or s3://")


def test_several_bad_variables_are_named_together(tmp_path):
    with pytest.raises(ValueError) as raised:
        get_settings({"MLOPS_HOME": str(tmp_path), "MLOPS_BACKEND": "x", "MLOPS_RUNTIME_PORT": "y"})

    assert "MLOPS_BACKEND='x'" in str(raised.value) and "MLOPS_RUNTIME_PORT='y'" in str(raised.value)


def test_the_environment_model_ignores_other_variables():
    assert Environment.model_validate({"MLOPS_HEAVY_QUEUE": "gpu", "PATH": "/bin"}).backend == "local"


def test_env_value_is_the_default_when_unset_or_blank():
    assert env_value("X", int, 7, environ={}) == 7
    assert env_value("X", int, 7, environ={"X": "  "}) == 7
    assert env_value("X", int, 7, environ={"X": " 9 "}) == 9


def test_a_bad_queue_name_is_named_with_its_value(monkeypatch):
    monkeypatch.setenv("MLOPS_TEST_QUEUE", "a b")

    with pytest.raises(ValueError, match=r"^MLOPS_TEST_QUEUE='a b' is not a queue name"):
        queue_name("MLOPS_TEST_QUEUE", "heavy")
