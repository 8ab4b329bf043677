"""Load the entry points in ``include/`` (they are not on ``sys.path``; SageMaker runs them as
scripts) by file path, once per process."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from mlops.core.paths import INCLUDE_DIR


def _load(name: str, relative: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, INCLUDE_DIR / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: pickled objects refer to the module by name
    spec.loader.exec_module(module)
    return module


def inference_module() -> ModuleType:
    """``include/serving/inference.py``: the SageMaker scikit-learn serving handlers."""
    return _load("mlops_serving_inference", "serving/inference.py")


def training_module() -> ModuleType:
    """``include/training/train.py``: the SageMaker-compatible training entry point."""
    return _load("mlops_training_train", "training/train.py")


def generators_module() -> ModuleType:
    """``include/data/generate.py``: the deterministic sample-data generators."""
    return _load("mlops_sample_data", "data/generate.py")
