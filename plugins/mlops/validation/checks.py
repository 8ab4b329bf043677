"""Batch-level checks computed in pandas (label presence, leakage, row count and drift against
the last accepted snapshot) and :func:`profile_frame`, the snapshot itself.

Their outcomes share the shape of the suite's, so the summary, quarantine and HTML report treat
them like expectations.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops.validation.values import MAX_OFFENDING_VALUES, distinct, json_safe

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from mlops.validation.settings import ValidationSettings

CHECK_LABEL = "check_label_column_present"
CHECK_LEAKAGE = "check_no_label_leakage"
CHECK_ROW_COUNT = "check_row_count_against_snapshot"
CHECK_DRIFT = "check_feature_drift_against_snapshot"
# PSI floor for an empty bin: keeps the logarithm finite; one bin going from 0 to 1% adds ~0.05.
_PSI_EPSILON = 1e-4
_TOP_CATEGORIES = 50


def check(name: str, column: str | None, success: bool, message: str, rule: str, *,
           offending: Sequence[Any] = (), observed: Any = None, count: int | None = None) -> dict[str, Any]:
    outcome = {
        "expectation": name,
        "column": column,
        "success": bool(success),
        "unexpected_count": count,
        "offending_values": distinct(list(offending)),
        "rule": rule,
        "message": message,
    }
    if observed is not None:
        outcome["observed"] = json_safe(observed)
    return outcome


def batch_checks(frame: pd.DataFrame, settings: ValidationSettings, snapshot: Mapping[str, Any] | None,
                  notes: list[str]) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    if settings.target is not None:
        present = settings.target in frame.columns
        outcomes.append(check(
            CHECK_LABEL, settings.target, present,
            "present" if present else
            f"the label column {settings.target!r} (schema.target) is missing: the batch cannot be trained on",
            "the label column is in the batch",
        ))
        if present and len(frame):
            outcomes += _leakage(frame, settings)
    if snapshot is None:
        notes.append(
            "no accepted snapshot yet (first run): the row-count and drift checks passed without a "
            "comparison; if this batch passes it becomes the snapshot"
        )
        outcomes.append(check(CHECK_DRIFT, None, True, "skipped: no accepted snapshot yet (first run)",
                               "PSI per column within tolerance"))
        return outcomes
    reference = f"the last accepted snapshot ({snapshot.get('validation_id') or 'unnamed'}, {snapshot['rows']} rows)"
    if settings.max_row_count_drop is not None:
        outcomes.append(_row_count(len(frame), int(snapshot["rows"]), settings.max_row_count_drop, reference))
    if len(frame):
        outcomes += _drift(frame, settings, snapshot, reference)
    return outcomes


def _leakage(frame: pd.DataFrame, settings: ValidationSettings) -> list[dict[str, Any]]:
    """A feature that maps one-to-one onto the label, or correlates with it almost perfectly, is the
    label under another name: a model trained on it looks perfect and predicts nothing."""
    import pandas as pd

    target = settings.target
    features = settings.features or [c for c in frame.columns if c not in (target, settings.id_column)]
    features = [c for c in features if c in frame.columns and c != target]
    label = frame[target]
    regression = settings.problem_type == "regression"
    encoded = None
    if regression:
        encoded = pd.to_numeric(label, errors="coerce")
    elif settings.positive_label is not None and label.nunique(dropna=True) == 2:
        encoded = (label == settings.positive_label).astype("float64").where(label.notna())
    threshold = settings.leakage_max_abs_correlation
    rule = "no feature maps one-to-one onto the label" + (
        f"; |correlation| with the label < {threshold}" if threshold is not None else "")
    outcomes, strongest = [], (0.0, None)
    for column in features:
        pairs = frame[[column, target]].dropna()
        if len(pairs) < 2:
            continue
        if not regression:
            n_labels = pairs[target].nunique()
            distinct = pairs.drop_duplicates()
            if n_labels >= 2 and pairs[column].nunique() == n_labels == len(distinct):
                mapping = [f"{json_safe(a)!r} -> {json_safe(b)!r}" for a, b in distinct.itertuples(index=False)]
                outcomes.append(check(
                    CHECK_LEAKAGE, column, False,
                    f"target leakage: the feature determines the label {target!r} one-to-one "
                    f"({', '.join(mapping[:MAX_OFFENDING_VALUES])}); it is the label under another name",
                    rule, offending=mapping, count=len(pairs),
                ))
                continue
        if encoded is None or not pd.api.types.is_numeric_dtype(frame[column]) or frame[column].nunique() < 2:
            continue
        correlation = frame[column].astype("float64").corr(encoded)
        if correlation is None or math.isnan(correlation):
            continue
        if abs(correlation) > abs(strongest[0]):
            strongest = (correlation, column)
        if threshold is not None and abs(correlation) >= threshold:
            outcomes.append(check(
                CHECK_LEAKAGE, column, False,
                f"target leakage: correlation {correlation:+.3f} with the label {target!r} "
                f"(|r| must stay below {threshold})",
                rule, observed=round(correlation, 4),
            ))
    if not outcomes:
        detail = (f"; strongest |correlation| {abs(strongest[0]):.3f} ({strongest[1]!r})"
                  if strongest[1] is not None else "")
        outcomes.append(check(CHECK_LEAKAGE, None, True,
                               f"no feature determines the label ({len(features)} features checked{detail})", rule))
    return outcomes


def _row_count(rows: int, reference_rows: int, max_drop: float, reference: str) -> dict[str, Any]:
    drop = 1.0 - rows / reference_rows if reference_rows else 0.0
    change = f"{drop:.1%} fewer" if drop >= 0 else f"{-drop:.1%} more"
    success = drop <= max_drop + 1e-12
    message = f"{rows} rows vs {reference_rows} in {reference}: {change}"
    if not success:
        message += f"; at most {max_drop:.0%} fewer allowed (validation.row_count.max_drop)"
    return check(CHECK_ROW_COUNT, None, success, message, f"at most {max_drop:.0%} fewer rows than the snapshot",
                  observed=rows)


def profile_frame(frame: pd.DataFrame, settings: ValidationSettings) -> dict[str, Any]:
    """The distribution of each drift column: what the next batch is compared with.

    Numeric columns: quantile bin edges (``settings.bins`` bins), the share of rows per bin,
    the share of nulls, mean, std, min and max. Categorical columns: the share of each of the
    50 most frequent values, of all others, and of nulls. Plus the row count.
    """
    columns = {}
    for column in _drift_columns(frame, settings):
        series = frame[column]
        if _kind(series, column, settings) == "numeric":
            columns[column] = _numeric_profile(series, settings.bins)
        else:
            columns[column] = _categorical_profile(series)
    return {"suite": settings.suite, "rows": len(frame), "bins": settings.bins, "columns": columns}


def _drift_columns(frame: pd.DataFrame, settings: ValidationSettings) -> list[str]:
    if settings.drift_columns is not None:
        wanted = list(settings.drift_columns)
    else:
        wanted = settings.features + ([settings.target] if settings.target else [])
    return [c for c in wanted if c in frame.columns]


def _kind(series: pd.Series, column: str, settings: ValidationSettings) -> str:
    import pandas as pd

    if column in settings.categorical or (column == settings.target and settings.problem_type != "regression"):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "numeric"
    return "categorical"


def _as_float(series: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype("float64")


def _numeric_profile(series: pd.Series, bins: int) -> dict[str, Any]:
    import numpy as np

    values = _as_float(series)
    valid = values.dropna().to_numpy()
    rows = len(values)
    edges = np.unique(np.quantile(valid, np.linspace(0, 1, bins + 1)[1:-1])) if len(valid) else np.array([])
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "shares": _bin_shares(valid, edges, rows),
        "null_share": 1.0 - len(valid) / rows if rows else 0.0,
        "mean": float(valid.mean()) if len(valid) else None,
        "std": float(valid.std()) if len(valid) else None,
        "min": float(valid.min()) if len(valid) else None,
        "max": float(valid.max()) if len(valid) else None,
    }


def _bin_shares(valid: Any, edges: Any, rows: int) -> list[float]:
    """Share of ``rows`` in each bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    import numpy as np

    if not rows:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype="float64"), valid, side="left"),
                         minlength=len(edges) + 1)
    return [float(c) / rows for c in counts]


def _category_keys(series: pd.Series) -> pd.Series:
    """Values as strings, integral floats without ``.0`` (so 408 and 408.0 are one category)."""
    import pandas as pd

    present = series.dropna()
    if pd.api.types.is_float_dtype(present) and len(present) and (present % 1 == 0).all():
        present = present.astype("int64")
    return present.astype(str)


def _categorical_profile(series: pd.Series) -> dict[str, Any]:
    rows = len(series)
    counts = _category_keys(series).value_counts()
    top = counts.iloc[:_TOP_CATEGORIES]
    return {
        "kind": "categorical",
        "shares": {str(k): int(v) / rows for k, v in top.items()} if rows else {},
        "other_share": (int(counts.sum()) - int(top.sum())) / rows if rows else 0.0,
        "null_share": 1.0 - int(counts.sum()) / rows if rows else 0.0,
    }


def _drift(frame: pd.DataFrame, settings: ValidationSettings, snapshot: Mapping[str, Any],
           reference: str) -> list[dict[str, Any]]:
    import numpy as np

    outcomes = []
    rows, reference_rows = len(frame), int(snapshot["rows"])
    for column in _drift_columns(frame, settings):
        expected = (snapshot.get("columns") or {}).get(column)
        if expected is None:
            outcomes.append(check(CHECK_DRIFT, column, True, f"skipped: {reference} has no profile of this column",
                                   "PSI within tolerance"))
            continue
        series = frame[column]
        if expected["kind"] == "numeric":
            edges = expected["edges"]
            values = _as_float(series)
            valid = values.dropna().to_numpy()
            e = [*expected["shares"], expected["null_share"]]
            a = [*_bin_shares(valid, edges, rows), 1.0 - len(valid) / rows]
            labels = [_bin_label(edges, i) for i in range(len(edges) + 1)] + ["null"]
            shift = (f"; mean {expected['mean']:.4g} -> {valid.mean():.4g}"
                     if expected.get("mean") is not None and len(valid) else "")
        else:
            keys = _category_keys(series).value_counts()
            known = list(expected["shares"])
            e = [*expected["shares"].values(), expected["other_share"], expected["null_share"]]
            a = [*(int(keys.get(k, 0)) / rows for k in known),
                 (int(keys.sum()) - int(sum(keys.get(k, 0) for k in known))) / rows,
                 1.0 - int(keys.sum()) / rows]
            labels = [repr(k) for k in known] + ["other values", "null"]
            shift = ""
        e_arr, a_arr = np.clip(np.asarray(e, dtype="float64"), _PSI_EPSILON, None), \
            np.clip(np.asarray(a, dtype="float64"), _PSI_EPSILON, None)
        contributions = (a_arr - e_arr) * np.log(a_arr / e_arr)
        psi = float(contributions.sum())
        occupied = int(np.count_nonzero((np.asarray(e) > 0) | (np.asarray(a) > 0)))
        allowance = _psi_noise(occupied, rows, reference_rows)
        tolerance = float(settings.psi_max_per_column.get(column, settings.psi_max))
        success = psi <= tolerance + allowance
        order = np.argsort(-contributions)
        moved = [f"{labels[i]}: {e[i]:.1%} -> {a[i]:.1%}" for i in order[:3] if contributions[i] > 1e-3]
        message = (f"PSI {psi:.3f} against {reference}, "
                   f"{'within' if success else 'beyond'} the tolerance {tolerance:g} "
                   f"(+{allowance:.3f} for sampling noise at {rows} vs {reference_rows} rows){shift}")
        if not success and moved:
            message += f"; largest shifts: {'; '.join(moved)}"
        outcomes.append(check(CHECK_DRIFT, column, success, message,
                               f"PSI <= {tolerance:g} + sampling noise", offending=[] if success else moved,
                               observed=round(psi, 4)))
    return outcomes


def _psi_noise(bins: int, rows: int, reference_rows: int) -> float:
    """PSI that sampling alone gives two samples of one distribution: its mean plus three standard
    deviations. PSI is close to a chi-square statistic with ``bins - 1`` degrees of freedom scaled
    by ``1/n + 1/m``, so small batches and many categories get a wider allowance."""
    if bins < 2 or not rows or not reference_rows:
        return 0.0
    dof = bins - 1
    return (dof + 3 * math.sqrt(2 * dof)) * (1 / rows + 1 / reference_rows)


def _bin_label(edges: Sequence[float], index: int) -> str:
    if not edges:
        return "all values"
    if index == 0:
        return f"<= {edges[0]:g}"
    if index == len(edges):
        return f"> {edges[-1]:g}"
    return f"({edges[index - 1]:g}, {edges[index]:g}]"
