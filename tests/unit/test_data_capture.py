"""Data capture of the local runtime, in SageMaker's data-capture layout."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops.backends.base import EndpointSpec
from mlops.backends.local.runtime.capture import CaptureSettings, CaptureWriter, capture_record
from mlops.deploy.endpoint_options import data_capture_config
from testkit.monitoring import churn_like_model
from testkit.runtime import running_runtime

MOMENT = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)


def config(destination: str, percentage: int = 100, **extra) -> dict:
    return {"EnableCapture": True, "InitialSamplingPercentage": percentage, "DestinationS3Uri": destination,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
            **extra}


def lines_under(root: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(root.rglob("*.jsonl")) for line in path.read_text().splitlines()]


def test_a_record_has_sagemakers_capture_fields_and_encodings():
    settings = CaptureSettings.from_config(config("file:///tmp/x"))
    record = capture_record(settings, b"a,1\n", "text/csv", b'{"predictions": []}', "application/json",
                            MOMENT, inference_id="req-1", event_id="e-1")
    assert record == {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "a,1\n", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": '{"predictions": []}', "encoding": "JSON"},
        },
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-03-04T05:06:07.891Z", "inferenceId": "req-1"},
        "eventVersion": "0",
    }


def test_a_content_type_the_config_does_not_list_is_base64():
    settings = CaptureSettings.from_config(config("file:///tmp/x"))
    side = settings.encode("application/x-npy", b"\x00\x01", "INPUT")
    assert side["encoding"] == "BASE64" and base64.b64decode(side["data"]) == b"\x00\x01"


def test_input_only_capture_leaves_the_output_out():
    settings = CaptureSettings.from_config(config("file:///tmp/x", CaptureOptions=[{"CaptureMode": "Input"}]))
    record = capture_record(settings, b"1", "text/csv", b"0.5", "text/csv", MOMENT)
    assert list(record["captureData"]) == ["endpointInput"] and "inferenceId" not in record["eventMetadata"]


@pytest.mark.parametrize("bad, named", [
    ({"InitialSamplingPercentage": 101}, "InitialSamplingPercentage"),
    ({"DestinationS3Uri": "no-scheme"}, "DestinationS3Uri"),
    ({"CaptureOptions": [{"CaptureMode": "Both"}]}, "CaptureOptions"),
])
def test_a_malformed_capture_config_is_refused_naming_the_field(bad, named):
    with pytest.raises(ValueError, match=named):
        CaptureSettings.from_config(config("file:///tmp/x", **{k: v for k, v in bad.items()}) | bad)


def test_disabled_capture_has_no_settings():
    assert CaptureSettings.from_config(config("file:///tmp/x", EnableCapture=False)) is None
    assert CaptureSettings.from_config(None) is None


def test_records_are_written_per_endpoint_variant_and_hour(tmp_path):
    settings = CaptureSettings.from_config(config(tmp_path.as_uri()))
    writer = CaptureWriter(flush_interval=60)
    for hour in (5, 5, 6):
        writer.record(settings, "churn-prod", "AllTraffic", b"1,2", "text/csv", b"0.1", "text/csv",
                      when=MOMENT.replace(hour=hour))
    writer.stop()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert [f.rsplit("/", 1)[0] for f in files] == ["churn-prod/AllTraffic/2026/03/04/05",
                                                    "churn-prod/AllTraffic/2026/03/04/06"]
    assert all(re.fullmatch(r"\d\d-\d\d-\d{3}-[0-9a-f-]{36}\.jsonl", f.rsplit("/", 1)[1]) for f in files)
    assert len(lines_under(tmp_path)) == 3 and writer.stats()["captured"] == 3


def test_sampling_keeps_about_the_configured_share():
    settings = CaptureSettings.from_config(config("file:///unused", percentage=20))
    writer = CaptureWriter(max_buffered=100_000, seed=3)
    kept = sum(writer.sampled(settings) for _ in range(10_000))
    assert 1800 < kept < 2200
    assert not any(writer.sampled(CaptureSettings.from_config(config("file:///u", 0))) for _ in range(1000))


def test_a_full_buffer_drops_and_counts_instead_of_growing(tmp_path):
    settings = CaptureSettings.from_config(config(tmp_path.as_uri()))
    writer = CaptureWriter(max_buffered=5, flush_interval=60)
    accepted = [writer.record(settings, "e", "AllTraffic", b"1", "text/csv", b"0", "text/csv", when=MOMENT)
                for _ in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert writer.stats()["dropped"] == 3 and writer.stats()["buffered"] == 5
    writer.stop()
    assert len(lines_under(tmp_path)) == 5


def test_the_runtime_captures_a_prod_endpoints_invocations_with_their_inference_id(tmp_path):
    """Deployed with the prod config's DataCaptureConfig, invoked with boto3's InferenceId."""
    home = tmp_path / "mlops"
    with running_runtime(home) as hosting:
        model = churn_like_model(home)
        uri, sha = model.uri, model.sha256
        capture = data_capture_config(hosting.settings, "churn-prod", {"data_capture": {"sampling_percentage": 100}})
        hosting.deploy(EndpointSpec("churn-prod", "churn-prod-1", uri, sha, data_capture_config=capture))
        client = hosting.runtime_client()
        answer = client.invoke_endpoint(EndpointName="churn-prod", ContentType="text/csv", Accept="text/csv",
                                        Body="basic,3,40.5,2\n", InferenceId="customer-42")["Body"].read().decode()
        hosting.deploy(EndpointSpec("churn-staging", "churn-staging-1", uri, sha))  # no capture
        client.invoke_endpoint(EndpointName="churn-staging", ContentType="text/csv", Body="pro,3,40.5,1\n")
        assert hosting.flush_capture()["captured"] == 1
    root = home / "data" / "monitoring" / "data-capture" / "churn-prod" / "churn-prod" / "AllTraffic"
    (record,) = lines_under(root)
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv", "mode": "INPUT", "data": "basic,3,40.5,2\n", "encoding": "CSV"}
    assert record["captureData"]["endpointOutput"]["data"] == answer
    assert record["eventMetadata"]["inferenceId"] == "customer-42"
    hour = datetime.strptime(record["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert (root / f"{hour:%Y/%m/%d/%H}").is_dir()
