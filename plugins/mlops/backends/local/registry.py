"""Local twin of the SageMaker Model Registry: one SQLite file.

Same fields and statuses as SageMaker model package groups and versioned model packages
(``ModelApprovalStatus``, ``ModelMetrics``, ``CustomerMetadataProperties``), plus what SageMaker
keeps only in CloudTrail: the approval history (who decided, why, on what evidence) and the
deployment history, so "which version was serving in prod at time T" has an answer.

The database is opened per call (the object holds only a path: it pickles and is safe to use
from several threads and processes). Every write is one ``BEGIN IMMEDIATE`` transaction, so
concurrent tasks never get the same version number; WAL mode lets readers run alongside.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.backends.base import (
    APPROVAL_STATUSES,
    DEPLOYMENT_OUTCOMES,
    PENDING,
    REJECTED_DEPLOYMENT,
    Deployment,
    ModelPackageGroupNotFound,
    ModelPackageNotFound,
    ModelVersion,
    RegistrationIdentity,
    Registry,
    check_status,
    require_text,
    strict_json,
)

ARN_PREFIX = "arn:aws:sagemaker:local:000000000000"

# SageMaker's ModelPackageGroupName pattern.
_GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")

SCHEMA_VERSION = 2  # 2: deployments.account, group_shares
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS model_package_groups (
    name        TEXT PRIMARY KEY,
    arn         TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_packages (
    arn             TEXT PRIMARY KEY,
    group_name      TEXT NOT NULL REFERENCES model_package_groups (name),
    version         INTEGER NOT NULL CHECK (version >= 1),
    status          TEXT NOT NULL CHECK (status IN {APPROVAL_STATUSES!r}),
    model_uri       TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    metrics         TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    approver        TEXT,
    approval_reason TEXT,
    UNIQUE (group_name, version)
);
CREATE TABLE IF NOT EXISTS approval_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    arn             TEXT NOT NULL REFERENCES model_packages (arn),
    previous_status TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN {APPROVAL_STATUSES!r}),
    approver        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    decided_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approval_history_by_arn ON approval_history (arn, id);
CREATE TABLE IF NOT EXISTS deployments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    arn             TEXT NOT NULL REFERENCES model_packages (arn),
    stage           TEXT NOT NULL,
    endpoint_name   TEXT NOT NULL,
    endpoint_config TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN {DEPLOYMENT_OUTCOMES!r}),
    deployed_at     TEXT NOT NULL,  -- as given by the caller
    deployed_at_utc TEXT NOT NULL,  -- normalised to UTC with microseconds: sorts as text
    detail          TEXT NOT NULL,
    account         TEXT NOT NULL DEFAULT ''  -- the account the endpoint is in
);
CREATE INDEX IF NOT EXISTS deployments_by_stage ON deployments (stage, deployed_at_utc, id);
CREATE TABLE IF NOT EXISTS group_shares (  -- the twin of a model package group's resource policy
    group_name TEXT NOT NULL REFERENCES model_package_groups (name),
    account    TEXT NOT NULL CHECK (length(account) = 12),
    PRIMARY KEY (group_name, account)
);
"""


def model_package_arn(group: str, version: int) -> str:
    return f"{ARN_PREFIX}:model-package/{group}/{version}"


def model_package_group_arn(group: str) -> str:
    return f"{ARN_PREFIX}:model-package-group/{group}"


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _to_utc(value: datetime | str, name: str) -> str:
    """``value`` as ISO-8601 UTC with microseconds; naive times are read as UTC (Airflow's)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an ISO-8601 timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime or an ISO-8601 string, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")








class SQLiteRegistry(Registry):
    """SageMaker Model Registry semantics in a SQLite file.

    :param db_path: the database file; its folder and the schema are created on first use.
    :param timeout: seconds a call waits for another process's write transaction to finish.
    """

    def __init__(self, db_path: Path | str, timeout: float = 30.0):
        self.db_path = Path(db_path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.db_path)!r})"

    # ------------------------------------------------------------ connection and schema
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions, each write opens its own explicitly.
        with closing(sqlite3.connect(self.db_path, timeout=self.timeout, isolation_level=None)) as conn:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self._create_schema(conn)
            yield conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent; not allowed inside a transaction
        # executescript commits first and runs as is: the BEGIN IMMEDIATE inside serialises
        # processes creating the schema at the same time (every statement is IF NOT EXISTS).
        conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}")
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(deployments)")}
            if "account" not in columns:  # a version 1 database: deployments recorded before accounts
                conn.execute("ALTER TABLE deployments ADD COLUMN account TEXT NOT NULL DEFAULT ''")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock from the start."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ------------------------------------------------------------ groups and versions
    def ensure_group(self, group: str, description: str = "") -> None:
        """Create the model package group ``group``; an existing group is left as it is."""
        if not isinstance(group, str) or not _GROUP_NAME.fullmatch(group):
            raise ValueError(
                f"model package group name {group!r} must be 1-63 letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO model_package_groups (name, arn, description, created_at) "
                "VALUES (?, ?, ?, ?)",
                (group, model_package_group_arn(group), description, _utcnow()),
            )

    def register(
        self, group: str, model_uri: str, sha256: str, metrics: dict[str, Any],
        metadata: dict[str, Any],
    ) -> ModelVersion:
        """Add the next version of ``group`` with status ``PendingManualApproval``, or return
        the newest version of ``group`` with the same :class:`RegistrationIdentity`
        (``reused=True``).

        The look-up and the insert are one ``BEGIN IMMEDIATE`` transaction, so processes
        registering one identity at the same time end with one version.

        :param group: an existing model package group (see :meth:`ensure_group`).
        :param model_uri: the ``model.tar.gz`` artifact.
        :param sha256: the artifact's digest, 64 hex characters (stored lower case).
        :param metrics: evaluation metrics (SageMaker ``ModelMetrics``), JSON-serialisable.
        :param metadata: hyperparameters, dataset digest, code version, run
            (``CustomerMetadataProperties``), JSON-serialisable.
        :raises ModelPackageGroupNotFound: ``group`` was never created.
        :raises ValueError: naming the field that is malformed.
        """
        require_text(model_uri, "model_uri")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hexadecimal characters, got {sha256!r}")
        metrics_json = strict_json(metrics, "metrics")
        metadata_json = strict_json(metadata, "metadata")
        identity = RegistrationIdentity.from_metadata(metadata)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM model_package_groups WHERE name = ?", (group,)).fetchone() is None:
                raise ModelPackageGroupNotFound(
                    f"model package group {group!r} does not exist in {self.db_path}; "
                    "create it with ensure_group() first"
                )
            if identity is not None and (existing := self._registered(conn, group, identity)) is not None:
                return dataclasses.replace(existing, reused=True)
            (version,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_packages WHERE group_name = ?", (group,)
            ).fetchone()
            arn = model_package_arn(group, version)
            conn.execute(
                "INSERT INTO model_packages (arn, group_name, version, status, model_uri, sha256, "
                "metrics, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (arn, group, version, PENDING, model_uri, sha256.lower(), metrics_json, metadata_json,
                 _utcnow()),
            )
            return self._get(conn, arn)

    def _registered(self, conn: sqlite3.Connection, group: str,
                    identity: RegistrationIdentity) -> ModelVersion | None:
        """The newest version of ``group`` registered with ``identity``, or None."""
        rows = conn.execute(
            "SELECT arn, metadata FROM model_packages WHERE group_name = ? ORDER BY version DESC", (group,)
        )
        for row in rows:
            if RegistrationIdentity.from_metadata(json.loads(row["metadata"])) == identity:
                return self._get(conn, row["arn"])
        return None

    def get(self, arn: str) -> ModelVersion:
        """The model package ``arn``; raises :class:`ModelPackageNotFound` (a ``KeyError``)."""
        with self._connect() as conn:
            return self._get(conn, arn)

    def list_versions(self, group: str, status: str | None = None) -> list[ModelVersion]:
        """Versions of ``group``, highest version number first, optionally only with ``status``.

        An unknown group has no versions.
        """
        if status is not None:
            check_status(status)
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM model_packages WHERE group_name = ? AND (? IS NULL OR status = ?) "
                "ORDER BY version DESC",
                (group, status, status),
            ).fetchall()
        return [self._version(row) for row in rows]

    # ------------------------------------------------------------ approvals
    def set_status(
        self, arn: str, status: str, approver: str, reason: str, evidence: dict[str, Any]
    ) -> ModelVersion:
        """Set ``ModelApprovalStatus`` of ``arn`` and append the decision to its approval history.

        ``PendingManualApproval`` is accepted too, to reset a decision (as SageMaker allows).
        The current status is read in the write transaction: when ``arn`` has ``status``
        already (two identical decisions at once), nothing is written and the version is
        returned with the approver and reason of the decision that set it.

        :param approver: who decided (a user, or ``policy:<name>`` for an automatic decision).
        :param reason: why, in words (SageMaker ``ApprovalDescription``).
        :param evidence: what the decision was based on (metrics, report URIs), JSON-serialisable.
        :raises ValueError: unknown status, empty approver, or evidence that is not JSON.
        :raises ModelPackageNotFound: unknown ``arn``.
        """
        check_status(status)
        require_text(approver, "approver")
        if not isinstance(reason, str):
            raise ValueError(f"reason must be a string, got {type(reason).__name__}")
        evidence_json = strict_json(evidence, "evidence")
        with self._write() as conn:
            previous = self._get(conn, arn)
            if previous.status == status:
                return previous
            conn.execute(
                "UPDATE model_packages SET status = ?, approver = ?, approval_reason = ? WHERE arn = ?",
                (status, approver, reason, arn),
            )
            conn.execute(
                "INSERT INTO approval_history (arn, previous_status, status, approver, reason, evidence, "
                "decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (arn, previous.status, status, approver, reason, evidence_json, _utcnow()),
            )
            return self._get(conn, arn)

    def approval_history(self, arn: str) -> list[dict[str, Any]]:
        """Every status decision on ``arn``, newest first.

        Each entry has ``arn``, ``previous_status``, ``status``, ``approver``, ``reason``,
        ``evidence`` (a dict) and ``decided_at`` (ISO-8601 UTC).
        """
        with self._connect() as conn:
            self._get(conn, arn)
            rows = conn.execute(
                "SELECT arn, previous_status, status, approver, reason, evidence, decided_at "
                "FROM approval_history WHERE arn = ? ORDER BY id DESC",
                (arn,),
            ).fetchall()
        return [{**dict(row), "evidence": json.loads(row["evidence"])} for row in rows]

    def record_external_decision(self, arn: str, status: str, approver: str, reason: str,
                                 evidence: dict[str, Any]) -> None:
        """Add a decision that reached the package without :meth:`set_status` to its history.

        The package row is not changed; ``previous_status`` is the last recorded decision's.
        """
        check_status(status)
        require_text(approver, "approver")
        evidence_json = strict_json({**evidence, "external": True}, "evidence")
        with self._write() as conn:
            self._get(conn, arn)
            last = conn.execute(
                "SELECT status FROM approval_history WHERE arn = ? ORDER BY id DESC LIMIT 1", (arn,)
            ).fetchone()
            conn.execute(
                "INSERT INTO approval_history (arn, previous_status, status, approver, reason, evidence, "
                "decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (arn, last["status"] if last else PENDING, status, approver, reason, evidence_json, _utcnow()),
            )

    # ------------------------------------------------------------ deployments
    def record_deployment(self, deployment: Deployment) -> None:
        """Append one deployment attempt to the history.

        ``deployment.arn`` must be a registered package; ``outcome`` one of
        ``DEPLOYMENT_OUTCOMES``; ``deployed_at`` an ISO-8601 time (naive means UTC). A
        ``rejected`` promotion never created an endpoint config, so it may have none.
        """
        if deployment.outcome not in DEPLOYMENT_OUTCOMES:
            raise ValueError(
                f"outcome {deployment.outcome!r} is not one of {', '.join(DEPLOYMENT_OUTCOMES)}"
            )
        require_text(deployment.stage, "stage")
        require_text(deployment.endpoint_name, "endpoint_name")
        if deployment.outcome != REJECTED_DEPLOYMENT:
            require_text(deployment.endpoint_config, "endpoint_config")
        deployed_at_utc = _to_utc(deployment.deployed_at, "deployed_at")
        detail_json = strict_json(deployment.detail, "detail")
        with self._write() as conn:
            self._get(conn, deployment.arn)
            conn.execute(
                "INSERT INTO deployments (arn, stage, endpoint_name, endpoint_config, outcome, "
                "deployed_at, deployed_at_utc, detail, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (deployment.arn, deployment.stage, deployment.endpoint_name, deployment.endpoint_config,
                 deployment.outcome, deployment.deployed_at, deployed_at_utc, detail_json, deployment.account),
            )

    def deployments(self, stage: str | None = None, account: str | None = None) -> list[Deployment]:
        """Deployment history, newest ``deployed_at`` first (ties: last recorded first); only
        ``stage``'s and the endpoints in ``account`` when given."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM deployments WHERE (? IS NULL OR stage = ?) AND (? IS NULL OR account = ?) "
                "ORDER BY deployed_at_utc DESC, id DESC",
                (stage, stage, account, account),
            ).fetchall()
        return [
            Deployment(
                arn=row["arn"], stage=row["stage"], endpoint_name=row["endpoint_name"],
                endpoint_config=row["endpoint_config"], outcome=row["outcome"],
                deployed_at=row["deployed_at"], detail=json.loads(row["detail"]), account=row["account"],
            )
            for row in rows
        ]

    # ------------------------------------------------------------ sharing with stage accounts
    def share_group(self, group: str, targets: list) -> None:
        """Share ``group`` with the accounts of ``targets`` other than the registry's (replacing
        any earlier sharing): they may then read its versions and artifacts
        (:meth:`~mlops.backends.local.hosting.LocalHosting.check_package`)."""
        accounts = sorted({t.account_id for t in targets if t.cross_account})
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM model_package_groups WHERE name = ?", (group,)).fetchone() is None:
                raise ModelPackageGroupNotFound(f"model package group {group!r} does not exist in {self.db_path}")
            conn.execute("DELETE FROM group_shares WHERE group_name = ?", (group,))
            conn.executemany("INSERT INTO group_shares (group_name, account) VALUES (?, ?)",
                             [(group, account) for account in accounts])

    def shared_accounts(self, group: str) -> list[str]:
        """The accounts ``group`` is shared with (:meth:`share_group`)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT account FROM group_shares WHERE group_name = ? ORDER BY account", (group,))
            return [row["account"] for row in rows]

    # ------------------------------------------------------------ rows
    def _get(self, conn: sqlite3.Connection, arn: str) -> ModelVersion:
        row = conn.execute("SELECT * FROM model_packages WHERE arn = ?", (arn,)).fetchone()
        if row is None:
            raise ModelPackageNotFound(f"model package {arn!r} is not in the registry at {self.db_path}")
        return self._version(row)

    @staticmethod
    def _version(row: sqlite3.Row) -> ModelVersion:
        return ModelVersion(
            group=row["group_name"], version=row["version"], arn=row["arn"], status=row["status"],
            model_uri=row["model_uri"], sha256=row["sha256"], metrics=json.loads(row["metrics"]),
            metadata=json.loads(row["metadata"]), created_at=row["created_at"],
            approver=row["approver"], approval_reason=row["approval_reason"],
        )
