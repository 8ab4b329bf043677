"""What validation needs to know about a pipeline: :class:`ValidationSettings`, read from the
pipeline config's ``validation:`` and ``schema:`` sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.core.paths import INCLUDE_DIR

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlops.core.config import PipelineConfig

EXPECTATIONS_DIR = INCLUDE_DIR / "expectations"
EXTRA_COLUMN_POLICIES = ("fail", "warn")


@dataclass(frozen=True)
class ValidationSettings:
    """Everything validation needs to know about a pipeline; build it with :meth:`from_pipeline`.

    :param suite: Suite file stem in ``include/expectations/``.
    :param min_rows: Overrides the suite's minimum row count.
    :param extra_columns: ``fail``: a column the suite does not name fails the batch; ``warn``:
        it is accepted with a warning (training only reads the configured features).
    :param target: The label column (``schema.target``); None for unsupervised pipelines.
    :param id_column: The row key (``schema.id_column``); never a feature.
    :param positive_label: The positive class of a binary label, used to encode it for correlation.
    :param problem_type: ``binary``, ``multiclass``, ``regression`` or ``clustering``.
    :param categorical: Columns profiled as categories even when their dtype is numeric.
    :param numeric: Numeric feature columns.
    :param drift_columns: Columns compared with the snapshot; None: features and the label.
    :param psi_max: Population stability index a column may reach, on top of sampling noise.
    :param psi_max_per_column: Per-column overrides of ``psi_max``.
    :param bins: Quantile bins of a numeric column's profile.
    :param max_row_count_drop: Fraction of the snapshot's rows a batch may lose (None: no check).
    :param leakage_max_abs_correlation: Largest ``|Pearson r|`` between a numeric feature and the
        encoded label (None: only the one-to-one check runs).
    """

    suite: str
    min_rows: int | None = None
    extra_columns: str = "fail"
    target: str | None = None
    id_column: str | None = None
    positive_label: Any = None
    problem_type: str | None = None
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    drift_columns: tuple[str, ...] | None = None
    psi_max: float = 0.25
    psi_max_per_column: Mapping[str, float] = field(default_factory=dict)
    bins: int = 10
    max_row_count_drop: float | None = 0.5
    leakage_max_abs_correlation: float | None = 0.95

    def __post_init__(self) -> None:
        if self.extra_columns not in EXTRA_COLUMN_POLICIES:
            raise ValueError(
                f"extra_columns must be one of {', '.join(EXTRA_COLUMN_POLICIES)}, got {self.extra_columns!r}"
            )

    @property
    def features(self) -> list[str]:
        return [c for c in (*self.categorical, *self.numeric) if c not in (self.target, self.id_column)]

    @classmethod
    def from_pipeline(cls, config: PipelineConfig) -> ValidationSettings:
        """Read ``validation:`` (and the column roles of ``schema:``) of a pipeline config.

        Errors are :class:`mlops.core.config.ConfigError` naming the file and the bad key.
        """
        from mlops.core.config import ConfigError

        where = f"{config.path}: validation"
        section = config.validation
        if not isinstance(section, dict):
            raise ConfigError(f"{where} must be a mapping")
        _check_keys(section, {"suite", "min_rows", "extra_columns", "drift", "row_count", "leakage"}, where)
        if not isinstance(section.get("suite"), str):
            raise ConfigError(f"{where}.suite must name a file in include/expectations/")
        drift = _subsection(section, "drift", {"psi_max", "psi_max_per_column", "bins", "columns"}, where)
        rows = _subsection(section, "row_count", {"max_drop"}, where)
        leakage = _subsection(section, "leakage", {"max_abs_correlation"}, where)
        schema = config.schema or {}
        per_column = drift.get("psi_max_per_column") or {}
        if not isinstance(per_column, dict):
            raise ConfigError(f"{where}.drift.psi_max_per_column must map column names to numbers")
        columns = drift.get("columns")
        if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
            raise ConfigError(f"{where}.drift.columns must be a list of column names")
        try:
            return cls(
                suite=section["suite"],
                min_rows=_number(section.get("min_rows"), f"{where}.min_rows", int, low=0),
                extra_columns=section.get("extra_columns", "fail"),
                target=schema.get("target"),
                id_column=schema.get("id_column"),
                positive_label=schema.get("positive_label"),
                problem_type=config.problem_type,
                categorical=tuple(schema.get("categorical") or ()),
                numeric=tuple(schema.get("numeric") or ()),
                drift_columns=tuple(columns) if columns is not None else None,
                psi_max=_number(drift.get("psi_max", 0.25), f"{where}.drift.psi_max", float, low=0),
                psi_max_per_column={
                    str(k): _number(v, f"{where}.drift.psi_max_per_column.{k}", float, low=0)
                    for k, v in per_column.items()
                },
                bins=_number(drift.get("bins", 10), f"{where}.drift.bins", int, low=2),
                max_row_count_drop=_number(rows.get("max_drop", 0.5), f"{where}.row_count.max_drop", float,
                                           low=0, high=1),
                leakage_max_abs_correlation=_number(leakage.get("max_abs_correlation", 0.95),
                                                    f"{where}.leakage.max_abs_correlation", float, low=0, high=1),
            )
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{where}: {err}") from None


def _check_keys(section: Mapping[str, Any], allowed: set[str], where: str) -> None:
    from mlops.core.config import ConfigError

    unknown = set(section) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")


def _subsection(section: Mapping[str, Any], key: str, allowed: set[str], where: str) -> dict[str, Any]:
    from mlops.core.config import ConfigError

    value = section.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key} must be a mapping")
    _check_keys(value, allowed, f"{where}.{key}")
    return value


def _number(value: Any, name: str, kind: type, low: float | None = None, high: float | None = None) -> Any:
    from mlops.core.config import ConfigError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be in [{low}, {high if high is not None else 'inf'}], got {value!r}")
    return kind(value)

