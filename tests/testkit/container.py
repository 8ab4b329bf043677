"""An environment with the Python side of SageMaker's scikit-learn 1.9-0 container.

The container contract tests (``tests/container/``) run ``include/training/train.py`` and
``include/serving/inference.py`` through the container's own libraries: sagemaker-training (the
training toolkit), sagemaker-containers (the serving library: its Transformer and Flask Worker)
and the container's ``sagemaker_sklearn_container`` package (vendored in
``tests/container/sagemaker_sklearn_container``, it is not on PyPI), at the versions of the
image's lock (``tests/container/sklearn-1.9-0-py311.txt``). They pin an old stack (protobuf
3.20, werkzeug 3.1.8), so they live in a virtualenv of their own, never the project's.

The environment is built on first use and kept under ``.mlops/container-envs/<digest>`` (the
digest of the lock, the vendored package and the Python version; ``MLOPS_CONTAINER_ENVS`` moves
it), with the one patch the image's Dockerfile applies (``collections.Mapping`` ->
``collections.abc.Mapping`` in sagemaker-containers). Without PyPI it cannot be built: the
tests are skipped, naming the command that failed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.core.paths import PROJECT_ROOT

CONTAINER_DIR = PROJECT_ROOT / "tests" / "container"
REQUIREMENTS = CONTAINER_DIR / "sklearn-1.9-0-py311.txt"
TOOLKIT_PACKAGE = CONTAINER_DIR / "sagemaker_sklearn_container"
READY = ".ready"


def _digest() -> str:
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    package = sorted(p for p in TOOLKIT_PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in [REQUIREMENTS, *package]:
        digest.update(path.relative_to(CONTAINER_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    if done.returncode:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")


def _install(venv: Path) -> None:
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "venv", str(venv)])
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        _run([str(uv), "pip", "install", "--quiet", "--python", str(python), "--no-deps", "-r", str(REQUIREMENTS)])
    else:
        _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)])
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    mapping = site / "sagemaker_containers" / "_mapping.py"  # the image's Dockerfile patches this file so
    mapping.write_text(mapping.read_text().replace("collections.Mapping", "collections.abc.Mapping"))
    shutil.copytree(TOOLKIT_PACKAGE, site / TOOLKIT_PACKAGE.name)  # the image pip-installs this package
    _run([str(python), "-c", "import sagemaker_sklearn_container.serving, sagemaker_sklearn_container.training"])


def container_python() -> Path:
    """The container environment's interpreter, built on first use; skips the test when it cannot be."""
    root = Path(os.environ.get("MLOPS_CONTAINER_ENVS") or PROJECT_ROOT / ".mlops" / "container-envs")
    venv = root / f"sklearn-1.9-0-{_digest()}"
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse it
        if not (venv / READY).exists():
            shutil.rmtree(venv, ignore_errors=True)
            try:
                _install(venv)
            except (RuntimeError, OSError, subprocess.SubprocessError) as err:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.skip(f"cannot build the scikit-learn container environment from {REQUIREMENTS.name} "
                            f"(needs PyPI): {err}")
            (venv / READY).touch()
    return venv / "bin" / "python"
