"""Training jobs laid out and run as SageMaker's scikit-learn container runs them (the container
tests' helpers: a module of its own, as ``from conftest import`` resolves to whichever folder's
conftest pytest loaded last)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REGION = "us-east-1"
REFIT_HYPERPARAMETERS = {"learning_rate": 0.1, "max_iter": 60, "max_leaf_nodes": 15}


def run_training_job(python: Path, opt_ml: Path, hyperparameters: dict[str, str], channels: dict[str, dict],
                     source: bytes) -> tuple[int, str]:
    """Lay out ``opt_ml`` as SageMaker does and run the toolkit on it; (exit code, output)."""
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    for folder in ("model", "output"):  # SageMaker creates these before the container starts
        (opt_ml / folder).mkdir()
    archive = opt_ml.parent / "sourcedir.tar.gz"
    archive.write_bytes(source)
    hyperparameters = {**hyperparameters, "sagemaker_submit_directory": json.dumps(str(archive))}
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    # SageMaker's hosts are algo-1, algo-2 ...; the toolkit waits until each name resolves, and
    # only localhost does here.
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "localhost", "hosts": ["localhost"], "network_interface_name": "lo"}))
    (config / "inputdataconfig.json").write_text(json.dumps({
        name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        for name in channels}))
    for name, files in channels.items():
        folder = opt_ml / "input" / "data" / name
        folder.mkdir(parents=True)
        for file_name, payload in files.items():
            (folder / file_name).write_bytes(payload)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(opt_ml.parent), "LANG": "C.UTF-8",
           "SAGEMAKER_BASE_DIR": str(opt_ml), "AWS_REGION": REGION,
           "SAGEMAKER_TRAINING_MODULE": "sagemaker_sklearn_container.training:main"}
    done = subprocess.run([str(python), "-m", "sagemaker_training.cli.train"], env=env, cwd=opt_ml.parent,
                          capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout + done.stderr


def parquet_bytes(frame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
