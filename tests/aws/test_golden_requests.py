"""Golden request sequences: every AWS request each DAG run makes on the aws backend.

Each scenario of :mod:`golden_scenarios` runs under moto and botocore's Stubber while
:class:`testkit.aws_calls.Recorder` records every botocore/aiobotocore call; the calls are
normalised (run ids, hashes, digests, times, temporary paths, S3 bodies become placeholders)
and compared with ``tests/aws/golden/<scenario>.json``, a list of
``{"service", "operation", "site", "params"}`` in call order.

Regenerate after an intended change, then review the diff of the JSON files like code::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/aws/test_golden_requests.py

With ``UPDATE_GOLDEN=1`` the files are rewritten and the comparison passes; without it a file
is never written. Also checked here: every project call site found by
:func:`testkit.aws_calls.call_sites` is reached by some scenario (the figure goes to
``tests/artifacts/aws_call_site_coverage.txt``), every recorded request validates against its
operation's input shape in botocore's service model, and every golden entry names a real
operation whose params still validate.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from golden_scenarios import (
    BUCKET,
    NEEDS_TRAINING_DATA,
    REGION,
    SCENARIOS,
    World,
    golden_dir,
    normaliser,
    scenario_settings,
    training_data,
)

from testkit.aws_calls import ROOT, call_sites

ARTIFACTS = ROOT / "tests" / "artifacts"
_RECORDED: dict[str, tuple[list, Path]] = {}  # scenario -> (raw calls, home), shared by the tests


def run_scenario(name: str, home: Path) -> list:
    """Run one scenario in a fresh moto account (its own bucket, registry, endpoints)."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for variable, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                                ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", REGION)):
            monkeypatch.setenv(variable, value)
        monkeypatch.delenv("MLOPS_USE_SPOT", raising=False)
        monkeypatch.delenv("MLOPS_MAX_PARALLEL_TRAINING_JOBS", raising=False)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        world = World(settings=scenario_settings(home), s3=s3, monkeypatch=monkeypatch)
        arguments = [training_data(s3)] if name in NEEDS_TRAINING_DATA else []
        SCENARIOS[name](world, *arguments)
        world.finish()
        return world.recorder.calls


def scenario_calls(name: str, tmp_path_factory) -> tuple[list, Path]:
    """The scenario's recorded calls and its home (run once per session, whichever test asks first)."""
    if name not in _RECORDED:
        home = tmp_path_factory.mktemp(name)
        _RECORDED[name] = (run_scenario(name, home), home)
    return _RECORDED[name]


def normalised(calls: list, home: Path) -> list[dict]:
    normalise = normaliser([str(home), tempfile.gettempdir()])
    return [normalise(call) for call in calls]


def dump(entries: list[dict]) -> str:
    return json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_requests_match_the_golden_sequence(name, tmp_path_factory):
    actual = dump(normalised(*scenario_calls(name, tmp_path_factory)))
    path = golden_dir() / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != actual:
            path.write_text(actual)
        return
    assert path.exists(), f"{path.name} is missing; create it with UPDATE_GOLDEN=1 (see the module docstring)"
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"golden/{path.name}", "recorded", n=3))
        pytest.fail(f"the AWS requests of {name} differ from golden/{path.name} "
                    f"(UPDATE_GOLDEN=1 rewrites it after an intended change):\n{diff}", pytrace=False)


def test_every_aws_call_site_is_reached_by_a_scenario(tmp_path_factory):
    recorded = set()
    for name in sorted(SCENARIOS):
        recorded |= {call.key for call in scenario_calls(name, tmp_path_factory)[0] if call.key is not None}
    sites = call_sites()  # one per call in the source; a function calling an operation twice has two
    missed = [site for site in sites if site.key not in recorded]
    covered = len(sites) - len(missed)
    keys = {site.key for site in sites}
    figure = (f"AWS call sites covered: {covered}/{len(sites)} ({100 * covered / len(sites):.0f}%); "
              f"distinct (path, function, service, operation): {len(keys & recorded)}/{len(keys)}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "aws_call_site_coverage.txt").write_text(
        figure + "\n" + "".join(f"missed: {s.path}:{s.line} {s.function} {s.service}.{s.operation}\n"
                                for s in missed))
    print(figure)
    assert not missed, figure + "; not reached:\n" + "\n".join(
        f"  {s.path}:{s.line} {s.function} -> {s.service}.{s.operation}" for s in missed)


def _input_shape(service: str, operation: str):
    model = botocore.session.get_session().get_service_model(service)
    assert operation in model.operation_names, f"{service} has no operation {operation}"
    return model.operation_model(operation).input_shape


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_recorded_request_validates_against_the_service_model(name, tmp_path_factory):
    validator = ParamValidator()
    problems = []
    for number, call in enumerate(scenario_calls(name, tmp_path_factory)[0]):
        report = validator.validate(call.params, _input_shape(call.service, call.operation))
        if report.has_errors():
            problems.append(f"#{number} {call.service}.{call.operation}: {report.generate_report()}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_golden_entry_is_a_real_operation_with_valid_params(name):
    path = golden_dir() / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path.name} not generated yet")
    validator = ParamValidator()
    problems = []
    for number, entry in enumerate(json.loads(path.read_text())):
        assert set(entry) == {"service", "operation", "account", "site", "params"}, entry
        report = validator.validate(entry["params"], _input_shape(entry["service"], entry["operation"]))
        if report.has_errors():
            problems.append(f"#{number} {entry['service']}.{entry['operation']}: {report.generate_report()}")
    assert not problems, "\n".join(problems)
