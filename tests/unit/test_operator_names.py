"""No class of this project's Airflow components is named like one of the amazon provider's.

Ours take other arguments and run on the configured backend (this machine by default); a DAG
that imports both must not be able to confuse them.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from airflow.sdk.exceptions import AirflowOptionalProviderFeatureException

KINDS = ("operators", "sensors", "triggers", "hooks", "links", "waiters")


def classes_of(package: str) -> dict[str, str]:
    """``{class name: module}`` of every class defined in ``package``'s modules."""
    try:
        root = importlib.import_module(package)
    except ImportError:
        return {}
    found = {}
    for info in pkgutil.iter_modules(root.__path__):
        try:
            module = importlib.import_module(f"{package}.{info.name}")
        except (ImportError, AirflowOptionalProviderFeatureException):  # an optional dependency is missing
            continue
        found.update({name: module.__name__ for name, value in vars(module).items()
                      if inspect.isclass(value) and value.__module__ == module.__name__})
    return found


PROVIDER = {name: module for kind in KINDS for name, module in
            classes_of(f"airflow.providers.amazon.aws.{kind}").items()}


def test_the_provider_classes_are_found():
    assert {"SageMakerTrainingOperator", "SageMakerEndpointOperator", "SageMakerTrigger"} <= set(PROVIDER)


@pytest.mark.parametrize("kind", ["operators", "sensors", "triggers", "hooks"])
def test_no_class_of_ours_has_a_provider_class_name(kind):
    ours = classes_of(f"mlops.{kind}")

    assert ours, f"no classes found in mlops.{kind}"
    assert {name: (module, PROVIDER[name]) for name, module in ours.items() if name in PROVIDER} == {}
