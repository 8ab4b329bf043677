"""Assets that connect the DAGs: ingestion produces ``raw``, training produces ``approved``,
monitoring produces ``drift``.

Names only (no I/O): DAG files import these at parse time.
"""

from __future__ import annotations

from airflow.sdk import Asset


def raw_data(use_case: str) -> Asset:
    """A use case's raw partitions in the object store (written by either ingest DAG)."""
    return Asset(name=f"{use_case}_raw", uri=f"mlops://raw/{use_case}")


def approved_model(group: str) -> Asset:
    """An Approved version appeared in a model package group."""
    return Asset(name=f"{group}_approved", uri=f"mlops://registry/{group}/approved")


def predictions(use_case: str) -> Asset:
    return Asset(name=f"{use_case}_predictions", uri=f"mlops://predictions/{use_case}")


def segments(use_case: str) -> Asset:
    return Asset(name=f"{use_case}_segments", uri=f"mlops://segments/{use_case}")


def model_drift(use_case: str) -> Asset:
    """Monitoring found prod traffic violating the serving version's baseline (``<use case>_drift``)."""
    return Asset(name=f"{use_case}_drift", uri=f"mlops://monitoring/{use_case}/drift")
