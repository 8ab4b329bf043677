"""A full disk while a partition or a model is written: a clear error, nothing half-written visible.

The "full disk" is ``RLIMIT_FSIZE`` on the writing process (set in a child process, which then
does the project's own writes): a write past the limit fails with ``EFBIG`` (Python ignores
SIGXFSZ), at the same ``write()`` call where a full filesystem fails with ``ENOSPC``, through the
same ``OSError`` path. It needs no privileges and touches nothing outside the test's folder (a
size-limited tmpfs would need ``mount``, which containers usually refuse).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024  # bytes any one file may grow to in the child

CHILD = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
import numpy as np, pyarrow as pa
from pathlib import Path
from mlops.core import partitions, storage
action, target = sys.argv[2], sys.argv[3]
try:
    if action == "partition":
        rows = int(sys.argv[4])
        table = pa.table({"id": np.arange(rows), "value": np.random.default_rng(1).random(rows)})
        directory = storage.to_path(target)
        parts = partitions.write_parts(directory, [table], token="t" + str(rows))
        partitions.commit(directory, parts, source={"test": "disk full"})
    else:
        model_dir = Path(sys.argv[4])
        storage.pack_model(model_dir, target)
    print(json.dumps({"ok": True}))
except OSError as err:
    print(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"}))
"""


def write_in_a_full_disk(action: str, target: str, argument: str, limit: int = LIMIT) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", CHILD, str(limit), action, target, argument], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def partition(mlops_home):
    from mlops.core.partitions import partition_path

    return partition_path("churn", "2026-03-01")


def test_a_partition_written_to_a_full_disk_fails_naming_it_and_is_never_published(partition):
    from mlops.core.partitions import PartitionNotFound, latest_partition, read_manifest

    outcome = write_in_a_full_disk("partition", str(partition), "200000")

    assert not outcome["ok"] and "File too large" in outcome["error"]
    assert list(partition.iterdir()) == []  # no torn part holding the space the retry needs
    with pytest.raises(PartitionNotFound):
        read_manifest(partition)
    with pytest.raises(FileNotFoundError):
        latest_partition("churn")


def test_a_partition_rewritten_on_a_full_disk_keeps_its_published_rows(partition):
    from mlops.core.partitions import read_manifest, read_partition

    assert write_in_a_full_disk("partition", str(partition), "100", limit=10 * LIMIT)["ok"]
    before = read_manifest(partition)

    outcome = write_in_a_full_disk("partition", str(partition), "200000")

    assert not outcome["ok"]
    assert read_manifest(partition) == before and len(read_partition(partition)) == 100


def test_a_model_packed_onto_a_full_disk_fails_and_leaves_no_artifact(tmp_path, mlops_home):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.joblib").write_bytes(os.urandom(4 * LIMIT))  # incompressible: the archive exceeds it
    dest = tmp_path / "artifacts" / "model.tar.gz"

    outcome = write_in_a_full_disk("model", dest.as_uri(), str(model_dir))

    assert not outcome["ok"] and "File too large" in outcome["error"]
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no torn archive, no temporary file
