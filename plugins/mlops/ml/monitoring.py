"""Model monitoring: a baseline at registration, captured prod traffic checked against it.

Why one module of this length: the baseline, the capture reader and the checks share Model
Monitor's schema and the bucket arithmetic both sides of a comparison must agree on; the DAG's
steps are :mod:`mlops.monitor.job`.

The same functions serve both backends; the files are Model Monitor's formats, so a report from
SageMaker's data-quality job and one from here read the same way.

* **Baseline** (:func:`baseline_statistics`, :func:`baseline_constraints`, :func:`write_baseline`):
  ``statistics.json`` and ``constraints.json`` of the training rows in Model Monitor's schema
  (``dataset.item_count``; per feature ``inferred_type`` and ``numerical_statistics`` — ``common``
  counts, mean, sum, std_dev, min, max, a ``kll`` distribution — or ``string_statistics`` —
  ``distinct_count``, ``categorical`` buckets; constraints: ``completeness`` per feature and
  ``monitoring_config.distribution_constraints``). The numeric buckets are the training data's
  deciles (equal-count buckets), so every bucket has data to compare against.
* **Capture** (:func:`capture_files`, :func:`read_capture`): the records SageMaker's data capture
  (and the local runtime's twin) wrote under ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/``
  in a window ``[since, until)`` (by ``inferenceTime``), streamed in chunks.
* **Checks** (:class:`MonitoringAccumulator`, :func:`monitor_capture`): Model Monitor's
  constraint checks — ``missing_column_check``, ``extra_column_check``, ``data_type_check``,
  ``completeness_check`` and ``baseline_drift_check`` — reported as ``constraint_violations.json``.

  The drift statistic is Model Monitor's: for a numeric feature the **Kolmogorov-Smirnov
  distance** (the largest gap between the baseline's and the capture's cumulative distributions,
  at the baseline's bucket edges); for a categorical feature the **L-infinity distance** (the
  largest gap between the two category frequencies). A feature drifts when its distance exceeds
  ``comparison_threshold`` (``monitoring.drift.threshold``, 0.1 by default; per-feature overrides)
  *and* the two-sample KS critical value at ``monitoring.drift.alpha`` (0.01): a small window
  whose distance is sampling noise is not drift. PSI is reported next to it, for reading only.
  Memory is bounded: only bucket counts are kept, whatever the number of records.
* **Model quality** (:func:`read_ground_truth`): labels in SageMaker's ground-truth format
  (``groundTruthData``, ``eventMetadata.eventId`` = the capture's ``inferenceId``) joined on the
  inference id; ROC AUC and accuracy against the approval thresholds.
* **Report** (:func:`monitoring_report_html`): per-feature plots of baseline vs capture.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from mlops.core.messages import name_list

STATISTIC = ("Kolmogorov-Smirnov distance at the baseline's bucket edges (numeric features), L-infinity "
             "distance between category frequencies (categorical features)")
KS_C = {0.1: 1.224, 0.05: 1.358, 0.025: 1.48, 0.01: 1.628, 0.005: 1.731, 0.001: 1.949}
OTHER = "__other__"  # categories beyond max_categories
VARIANT = "AllTraffic"


class MonitoringError(ValueError):
    """A baseline, capture record or setting that cannot be monitored, named."""


def monitoring_settings(config) -> dict[str, Any]:
    """``monitoring`` of the pipeline config, as :class:`~mlops.core.config_schema.Monitoring`
    checked it (its defaults filled in), as a plain dict.

    ``config`` is a :class:`~mlops.core.config.PipelineConfig` (its checked ``spec`` is used),
    anything with a ``raw`` mapping (checked here), or None (the defaults).

    :raises MonitoringError: naming the bad key and value (``monitoring.drift.alpha=0.2 ...``).
    """
    from pydantic import ValidationError

    from mlops.core.config_schema import Monitoring
    from mlops.core.schema import describe

    spec = getattr(config, "spec", None)
    if spec is not None:
        return (spec.monitoring or Monitoring()).model_dump()
    raw = (getattr(config, "raw", None) or {}).get("monitoring") if config is not None else None
    try:
        return Monitoring.model_validate(raw or {}).model_dump()
    except ValidationError as err:
        raise MonitoringError(describe(err, root="monitoring")) from None


# ---------------------------------------------------------------- baseline
def _inferred_type(series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "String"
    return "Integral" if pd.api.types.is_integer_dtype(series) else "Fractional"


def category_text(value: Any) -> str:
    """A categorical value as text, the same for the training frame and a CSV field: a whole
    float (an integer column with gaps, read as float) loses its ``.0``."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def baseline_statistics(frame, feature_columns: list[str], categorical: list[str], bins: int = 10) -> dict[str, Any]:
    """Model Monitor's ``statistics.json`` of ``frame``'s ``feature_columns``.

    ``categorical`` columns are ``String`` features whatever their dtype (an area code is a
    category); numeric ones get ``bins`` equal-count buckets (the KLL ``buckets``) and a
    sketch of their quantiles.
    """
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise MonitoringError(f"baseline: the training data lacks feature columns {name_list(missing)}")
    features = []
    for name in feature_columns:
        series = frame[name]
        present = int(series.notna().sum())
        common = {"num_present": present, "num_missing": int(len(series) - present)}
        kind = "String" if name in categorical else _inferred_type(series)
        if kind == "String":
            counts = series.dropna().map(category_text).value_counts()
            features.append({"name": name, "inferred_type": "String", "string_statistics": {
                "common": common, "distinct_count": float(len(counts)),
                "distribution": {"categorical": {"buckets": [
                    {"value": str(value), "count": int(count)} for value, count in counts.items()]}}}})
            continue
        values = series.dropna().to_numpy(dtype=float)
        if not len(values):
            raise MonitoringError(f"baseline: numeric feature {name!r} has no values")
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
        counts = np.bincount(np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, len(edges) - 2),
                             minlength=len(edges) - 1)
        features.append({"name": name, "inferred_type": kind, "numerical_statistics": {
            "common": common, "mean": float(values.mean()), "sum": float(values.sum()),
            "std_dev": float(values.std()), "min": float(values.min()), "max": float(values.max()),
            "distribution": {"kll": {
                "buckets": [{"lower_bound": float(lo), "upper_bound": float(hi), "count": float(n)}
                            for lo, hi, n in zip(edges[:-1], edges[1:], counts)],
                "sketch": {"parameters": {"c": 0.64, "k": 2048.0},
                           "data": [[float(q) for q in np.quantile(values, np.linspace(0, 1, 101))]]},
            }}}})
    return {"version": 0.0, "dataset": {"item_count": int(len(frame))}, "features": features}


def baseline_constraints(statistics: dict[str, Any], threshold: float = 0.1) -> dict[str, Any]:
    """Model Monitor's ``constraints.json`` suggested from ``statistics``: each feature's type and
    completeness as seen in training, numeric non-negativity, the drift comparison settings."""
    features = []
    for feature in statistics["features"]:
        stats = feature.get("numerical_statistics") or feature.get("string_statistics")
        common = stats["common"]
        total = common["num_present"] + common["num_missing"]
        entry = {"name": feature["name"], "inferred_type": feature["inferred_type"],
                 "completeness": round(common["num_present"] / total, 6) if total else 1.0}
        if "numerical_statistics" in feature:
            entry["num_constraints"] = {"is_non_negative": stats["min"] >= 0}
        features.append(entry)
    return {"version": 0.0, "features": features, "monitoring_config": {
        "evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0, "domain_content_threshold": 1.0,
        "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": float(threshold),
                                     "comparison_method": "Robust", "categorical_comparison_threshold": float(threshold),
                                     "categorical_drift_method": "LInfinity"},
    }}


def write_baseline(frame, feature_columns: list[str], categorical: list[str], out_uri: str,
                   threshold: float = 0.1, bins: int = 10) -> dict[str, str]:
    """Write ``statistics.json`` and ``constraints.json`` under ``out_uri``; their URIs."""
    from mlops.core.storage import write_json

    statistics = baseline_statistics(frame, feature_columns, categorical, bins)
    base = out_uri.rstrip("/")
    return {"baseline_statistics_uri": write_json(f"{base}/statistics.json", statistics),
            "baseline_constraints_uri": write_json(f"{base}/constraints.json",
                                                   baseline_constraints(statistics, threshold))}


# ---------------------------------------------------------------- reading the capture
def capture_prefix(data_capture_config: dict[str, Any], endpoint: str, variant: str = VARIANT) -> str:
    """Where an endpoint's capture lands: ``<DestinationS3Uri>/<endpoint>/<variant>``."""
    return f"{data_capture_config['DestinationS3Uri'].rstrip('/')}/{endpoint}/{variant}"


def _utc(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise MonitoringError(f"{moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def _hours(since: datetime, until: datetime) -> Iterator[datetime]:
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        yield hour
        hour += timedelta(hours=1)


def capture_files(prefix: str, since: datetime | str, until: datetime | str) -> list[str]:
    """The capture files of the hours ``[since, until)`` touch, in time order (URIs)."""
    from mlops.core.storage import to_path

    since, until = _utc(since), _utc(until)
    if until <= since:
        raise MonitoringError(f"the window {since.isoformat()} .. {until.isoformat()} is empty")
    if until - since > timedelta(days=31):
        raise MonitoringError(f"the window {since.isoformat()} .. {until.isoformat()} is over 31 days")
    files = []
    for hour in _hours(since, until):
        folder = to_path(f"{prefix.rstrip('/')}/{hour:%Y/%m/%d/%H}")
        if folder.exists():
            files += sorted(str(p) for p in folder.iterdir() if p.name.endswith(".jsonl"))
    return files


def _capture_time(moment: datetime) -> str:
    """``moment`` as capture writes ``inferenceTime`` (``2026-01-01T10:00:00.123Z``): that fixed
    format sorts as time does, so a record's time is compared as text (no parsing per record)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _decode(side: dict[str, Any]) -> str:
    data = side.get("data", "")
    if side.get("encoding") == "BASE64":
        return base64.b64decode(data).decode("utf-8")
    return data


@dataclass
class CaptureChunk:
    """Records of a stretch of capture: input rows (a list of field lists, or of dicts for JSON
    objects), the answered probability per row (None when unknown), and inference ids."""

    rows: list[Any] = field(default_factory=list)
    probabilities: list[float | None] = field(default_factory=list)
    inference_ids: list[str | None] = field(default_factory=list)
    unreadable: int = 0  # records whose payload could not be read


def _csv_rows(text: str) -> list[list[str]]:
    line = text.rstrip("\r\n")
    if '"' not in line and "\n" not in line:  # one plain record: what most invocations are
        return [line.split(",")] if line else []
    return [row for row in csv.reader(io.StringIO(text)) if row]


def _input_rows(side: dict[str, Any]) -> list[Any]:
    text = _decode(side)
    kind = side.get("observedContentType", "").split(";")[0].strip().lower()
    if kind == "application/json" or side.get("encoding") == "JSON":
        payload = json.loads(text)
        instances = payload.get("instances") if isinstance(payload, dict) else payload
        if not isinstance(instances, list):
            raise ValueError("JSON input has no instances")
        return instances
    return _csv_rows(text)


def _probabilities(side: dict[str, Any] | None, n: int, response_keys: list[str]) -> list[float | None]:
    if side is None:
        return [None] * n
    text = _decode(side)
    kind = side.get("observedContentType", "").split(";")[0].strip().lower()
    if kind == "application/json":
        answers = [item.get("probability") for item in json.loads(text).get("predictions", [])]
    else:
        position = response_keys.index("probability") if "probability" in response_keys else None
        answers = [float(row[position]) if position is not None and len(row) > position else None
                   for row in _csv_rows(text)]
    return answers if len(answers) == n else [None] * n


def read_capture(files: list[str], since: datetime | str, until: datetime | str,
                 response_keys: list[str] | None = None, chunk_rows: int = 50_000) -> Iterator[CaptureChunk]:
    """Stream the records of ``files`` whose ``inferenceTime`` is in ``[since, until)``, in chunks
    of about ``chunk_rows`` input rows (a request of many records counts each one)."""
    from mlops.core.storage import to_path

    first, end = _capture_time(_utc(since)), _capture_time(_utc(until))
    keys = response_keys or ["predicted_label", "probability"]
    chunk = CaptureChunk()
    for uri in files:
        with to_path(uri).open("r", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    metadata = record["eventMetadata"]
                    if not first <= metadata["inferenceTime"] < end:
                        continue
                    data = record["captureData"]
                    rows = _input_rows(data["endpointInput"])
                    probabilities = _probabilities(data.get("endpointOutput"), len(rows), keys)
                except (ValueError, KeyError, TypeError):
                    chunk.unreadable += 1
                    continue
                identity = metadata.get("inferenceId")
                chunk.rows += rows
                chunk.probabilities += probabilities
                chunk.inference_ids += [identity if len(rows) == 1 else f"{identity}:{i}" if identity else None
                                        for i in range(len(rows))]
                if len(chunk.rows) >= chunk_rows:
                    yield chunk
                    chunk = CaptureChunk()
    if chunk.rows or chunk.unreadable:
        yield chunk


def read_ground_truth(files: list[str]) -> dict[str, str]:
    """Labels by inference id from SageMaker ground-truth records
    (``{"groundTruthData": {"data", "encoding"}, "eventMetadata": {"eventId"}}``); a record of
    several CSV lines labels ``<id>:0``, ``<id>:1``, ..."""
    from mlops.core.storage import to_path

    labels: dict[str, str] = {}
    for uri in files:
        with to_path(uri).open("r", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    identity = record["eventMetadata"]["eventId"]
                    values = [v for v in _decode(record["groundTruthData"]).splitlines() if v.strip()]
                except (ValueError, KeyError, TypeError) as err:
                    raise MonitoringError(f"{uri} line {number} is not a ground-truth record: {err}") from None
                if len(values) == 1:
                    labels[identity] = values[0].strip()
                else:
                    labels.update({f"{identity}:{i}": v.strip() for i, v in enumerate(values)})
    return labels


# ---------------------------------------------------------------- checks
def _ks_critical(alpha: float, n: int, m: int) -> float:
    return KS_C[alpha] * math.sqrt((n + m) / (n * m))


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / max(expected.sum(), 1), 1e-4)
    a = np.maximum(actual / max(actual.sum(), 1), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


class _Feature:
    """Counts of one feature: numeric in the baseline's buckets, categorical per value."""

    def __init__(self, spec: dict[str, Any], completeness: float, max_categories: int):
        self.name = spec["name"]
        self.inferred_type = spec["inferred_type"]
        self.completeness_constraint = completeness
        self.present = self.missing = self.wrong_type = 0
        self.max_categories = max_categories
        if "numerical_statistics" in spec:
            buckets = spec["numerical_statistics"]["distribution"]["kll"]["buckets"]
            self.edges = np.array([b["lower_bound"] for b in buckets] + [buckets[-1]["upper_bound"]])
            self.expected = np.array([b["count"] for b in buckets], dtype=float)
            self.counts = np.zeros(len(buckets), dtype=np.int64)
            self.total = 0.0
            self.categories = None
        else:
            buckets = spec["string_statistics"]["distribution"]["categorical"]["buckets"]
            self.categories = {b["value"]: float(b["count"]) for b in buckets}
            self.seen: dict[str, int] = {}

    @property
    def numeric(self) -> bool:
        return self.categories is None

    def add(self, values: list[Any]) -> None:
        import pandas as pd

        series = pd.Series(values, dtype=object)
        empty = series.isna() | (series.astype(str).str.strip() == "")
        self.missing += int(empty.sum())
        series = series[~empty]
        self.present += len(series)
        if self.numeric:
            numbers = pd.to_numeric(series, errors="coerce")
            self.wrong_type += int(numbers.isna().sum())
            numbers = numbers.dropna().to_numpy(dtype=float)
            index = np.clip(np.searchsorted(self.edges[1:-1], numbers, side="right"), 0, len(self.counts) - 1)
            self.counts += np.bincount(index, minlength=len(self.counts))
            self.total += float(numbers.sum())
            return
        text = series.map(category_text)
        for value, count in text.value_counts().items():
            if value not in self.seen and value not in self.categories and len(self.seen) >= self.max_categories:
                value = OTHER
            self.seen[value] = self.seen.get(value, 0) + int(count)

    def distance(self) -> tuple[float, float, int, int]:
        """(statistic, PSI, baseline rows, captured rows)."""
        if self.numeric:
            expected, actual = self.expected, self.counts.astype(float)
        else:
            names = sorted(set(self.categories) | set(self.seen))
            expected = np.array([self.categories.get(n, 0.0) for n in names])
            actual = np.array([float(self.seen.get(n, 0)) for n in names])
        n, m = int(expected.sum()), int(actual.sum())
        if not n or not m:
            return 0.0, 0.0, n, m
        p, q = expected / n, actual / m
        statistic = float(np.max(np.abs(np.cumsum(p) - np.cumsum(q)))) if self.numeric else float(np.max(np.abs(p - q)))
        return statistic, _psi(expected, actual), n, m

    def plot_data(self) -> dict[str, Any]:
        if self.numeric:
            labels = [f"{lo:.4g}" for lo in self.edges[:-1]]
            expected, actual = self.expected, self.counts.astype(float)
        else:
            labels = sorted(set(self.categories) | set(self.seen), key=lambda v: -self.categories.get(v, 0))[:20]
            expected = np.array([self.categories.get(n, 0.0) for n in labels])
            actual = np.array([float(self.seen.get(n, 0)) for n in labels])
        return {"labels": labels, "baseline": (expected / max(expected.sum(), 1)).tolist(),
                "capture": (actual / max(actual.sum(), 1)).tolist()}


class MonitoringAccumulator:
    """Checks captured rows against a baseline in bounded memory (bucket counts only).

    :param statistics: the baseline's ``statistics.json``.
    :param constraints: the baseline's ``constraints.json``.
    :param settings: :func:`monitoring_settings`.
    :param labelled: inference ids with ground truth: only their predictions are kept (for
        :func:`model_quality`), so memory stays bounded by the labels, not the traffic.
    """

    def __init__(self, statistics: dict[str, Any], constraints: dict[str, Any],
                 settings: dict[str, Any] | None = None, labelled: set[str] | frozenset[str] = frozenset()):
        self.settings = settings or monitoring_settings(None)
        self.labelled = labelled
        try:
            completeness = {f["name"]: float(f.get("completeness", 1.0)) for f in constraints["features"]}
            self.features = [_Feature(spec, completeness.get(spec["name"], 1.0), self.settings["max_categories"])
                             for spec in statistics["features"]]
        except (KeyError, TypeError, IndexError) as err:
            raise MonitoringError(f"the baseline is not in Model Monitor's statistics/constraints format: {err!r}") from None
        self.columns = [f.name for f in self.features]
        self.rows = 0
        self.unreadable = 0
        self.short_rows = self.long_rows = 0  # CSV records with fewer / more fields than the baseline's features
        self.missing_columns: dict[str, int] = {}
        self.extra_columns: dict[str, int] = {}
        self.predictions: dict[str, float] = {}  # inference id -> probability, for the ground-truth join
        self.probability_sum = 0.0
        self.probability_count = 0

    def add(self, chunk: CaptureChunk) -> None:
        width = len(self.columns)
        columns: list[list[Any]] = [[] for _ in self.columns]
        for row in chunk.rows:
            if isinstance(row, dict):
                for name in set(self.columns) - row.keys():
                    self.missing_columns[name] = self.missing_columns.get(name, 0) + 1
                for name in row.keys() - set(self.columns):
                    self.extra_columns[name] = self.extra_columns.get(name, 0) + 1
                row = [row.get(name) for name in self.columns]
            elif len(row) != width:
                if len(row) < width:
                    self.short_rows += 1
                else:
                    self.long_rows += 1
                row = (list(row) + [None] * width)[:width]
            for values, value in zip(columns, row):
                values.append(value)
        for feature, values in zip(self.features, columns):
            feature.add(values)
        self.rows += len(chunk.rows)
        self.unreadable += chunk.unreadable
        for identity, probability in zip(chunk.inference_ids, chunk.probabilities):
            if probability is None:
                continue
            self.probability_sum += probability
            self.probability_count += 1
            if identity is not None and identity in self.labelled:
                self.predictions[identity] = probability

    def result(self) -> dict[str, Any]:
        """The checks' outcome: ``features`` (per feature: distance, threshold, drift), Model Monitor
        ``violations``, ``drift`` (any violation), the statistic used, and counts."""
        drift_settings = self.settings["drift"]
        enough = self.rows >= int(drift_settings["min_rows"])
        violations: list[dict[str, str]] = []
        for name, count in sorted(self.missing_columns.items()):
            violations.append({"feature_name": name, "constraint_check_type": "missing_column_check",
                               "description": f"{count} captured record(s) lack column {name!r}"})
        for name, count in sorted(self.extra_columns.items()):
            violations.append({"feature_name": name, "constraint_check_type": "extra_column_check",
                               "description": f"{count} captured record(s) have column {name!r}, which the "
                                              "baseline does not know"})
        if self.short_rows or self.long_rows:
            violations.append({"feature_name": "*", "constraint_check_type": "missing_column_check"
                               if self.short_rows else "extra_column_check",
                               "description": f"{self.short_rows} CSV record(s) with fewer and {self.long_rows} with "
                                              f"more than the baseline's {len(self.columns)} fields"})
        features = []
        for feature in self.features:
            statistic, psi, n, m = feature.distance()
            threshold = float(drift_settings["threshold_per_column"].get(feature.name, drift_settings["threshold"]))
            noise = _ks_critical(float(drift_settings["alpha"]), n, m) if n and m else 1.0
            drifted = enough and statistic > max(threshold, noise)
            total = feature.present + feature.missing
            completeness = feature.present / total if total else 1.0
            typed = (feature.present - feature.wrong_type) / feature.present if feature.present else 1.0
            features.append({"name": feature.name, "inferred_type": feature.inferred_type,
                             "distance": round(statistic, 6), "threshold": threshold,
                             "noise_floor": round(noise, 6), "psi": round(psi, 6), "drift": bool(drifted),
                             "completeness": round(completeness, 6), "type_conformance": round(typed, 6),
                             "plot": feature.plot_data()})
            if feature.wrong_type:
                violations.append({"feature_name": feature.name, "constraint_check_type": "data_type_check",
                                   "description": f"{feature.wrong_type} of {feature.present} value(s) are not "
                                                  f"{feature.inferred_type} (type conformance {typed:.4f} < 1.0)"})
            if total and completeness < feature.completeness_constraint:
                violations.append({"feature_name": feature.name, "constraint_check_type": "completeness_check",
                                   "description": f"completeness {completeness:.4f} is below the baseline's "
                                                  f"{feature.completeness_constraint}"})
            if drifted:
                violations.append({"feature_name": feature.name, "constraint_check_type": "baseline_drift_check",
                                   "description": f"distance {statistic:.4f} exceeds the threshold {threshold} "
                                                  f"(sampling noise {noise:.4f} at alpha {drift_settings['alpha']})"})
        drifted_features = [f["name"] for f in features if f["drift"]]
        status = "insufficient_data" if not enough else "violations" if violations else "ok"
        return {"status": status, "drift": bool(enough and violations), "statistic": STATISTIC,
                "rows": self.rows, "unreadable_records": self.unreadable, "min_rows": int(drift_settings["min_rows"]),
                "drifted_features": drifted_features, "violations": violations, "features": features,
                "mean_probability": (self.probability_sum / self.probability_count
                                     if self.probability_count else None)}


def model_quality(predictions: dict[str, float], labels: dict[str, str], positive_label: str,
                  thresholds: dict[str, float]) -> dict[str, Any] | None:
    """ROC AUC and accuracy (at 0.5) of the predictions whose inference id has a label, and which
    approval thresholds (``min_holdout_<metric>``) they miss; None when no prediction has one."""
    joined = [(predictions[i], labels[i] == positive_label) for i in labels.keys() & predictions.keys()]
    if not joined:
        return None
    scores = np.array([p for p, _ in joined])
    truth = np.array([t for _, t in joined])
    metrics: dict[str, Any] = {"labelled_rows": len(joined), "accuracy": float(((scores >= 0.5) == truth).mean())}
    if 0 < truth.sum() < len(truth):
        from sklearn.metrics import roc_auc_score

        metrics["roc_auc"] = float(roc_auc_score(truth, scores))
    below = {name: {"value": metrics[name.removeprefix("min_holdout_")], "threshold": float(limit)}
             for name, limit in thresholds.items()
             if name.startswith("min_holdout_") and name.removeprefix("min_holdout_") in metrics
             and metrics[name.removeprefix("min_holdout_")] < float(limit)}
    return {"metrics": metrics, "below_thresholds": below}


def monitor_capture(statistics: dict[str, Any], constraints: dict[str, Any], files: list[str],
                    since: datetime | str, until: datetime | str, settings: dict[str, Any] | None = None,
                    labels: dict[str, str] | None = None, positive_label: str | None = None,
                    thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Check the capture ``files`` in ``[since, until)`` against the baseline (see
    :meth:`MonitoringAccumulator.result`); with ``labels``, also ``model_quality``."""
    settings = settings or monitoring_settings(None)
    accumulator = MonitoringAccumulator(statistics, constraints, settings, labelled=frozenset(labels or ()))
    for chunk in read_capture(files, since, until, chunk_rows=int(settings["chunk_rows"])):
        accumulator.add(chunk)
    result = accumulator.result()
    result["window"] = {"since": _utc(since).isoformat(), "until": _utc(until).isoformat()}
    result["model_quality"] = None
    if labels and positive_label is not None:
        merge_model_quality(result, model_quality(accumulator.predictions, labels, positive_label, thresholds or {}))
    return result


def merge_model_quality(result: dict[str, Any], quality: dict[str, Any] | None) -> dict[str, Any]:
    """Put ``quality`` (:func:`model_quality`) into a data-quality ``result``: a metric below its
    approval threshold is a ``model_quality_check`` violation and makes the result drift."""
    result["model_quality"] = quality
    if quality and quality["below_thresholds"]:
        result["drift"] = True
        result["status"] = "violations"
        for name, miss in quality["below_thresholds"].items():
            result["violations"].append({
                "feature_name": "*", "constraint_check_type": "model_quality_check",
                "description": f"{name.removeprefix('min_holdout_')} {miss['value']:.4f} on "
                               f"{quality['metrics']['labelled_rows']} labelled rows is below the approval "
                               f"threshold {miss['threshold']}"})
    return result


def capture_model_quality(capture_prefix: str, ground_truth_prefix: str, since: datetime | str,
                          until: datetime | str, positive_label: str | None, thresholds: dict[str, float],
                          chunk_rows: int = 50_000) -> dict[str, Any] | None:
    """Model quality of the capture in ``[since, until)`` from the ground truth uploaded in those
    hours (labels joined on the inference id), as :func:`monitor_capture` computes it, without the
    data-quality checks: for a data-quality result that comes from elsewhere (a Model Monitor
    execution). None without labels, a positive label, or a labelled prediction."""
    if positive_label is None:
        return None
    labels = read_ground_truth(capture_files(ground_truth_prefix, since, until))
    if not labels:
        return None
    predictions: dict[str, float] = {}
    for chunk in read_capture(capture_files(capture_prefix, since, until), since, until, chunk_rows=chunk_rows):
        predictions.update({identity: probability for identity, probability in zip(chunk.inference_ids,
                                                                                  chunk.probabilities)
                            if identity is not None and probability is not None and identity in labels})
    quality = model_quality(predictions, labels, positive_label, thresholds)
    if quality is not None:
        quality["window"] = {"since": _utc(since).isoformat(), "until": _utc(until).isoformat()}
    return quality


# ---------------------------------------------------------------- Model Monitor's own reports
def _capture_buckets(feature: dict[str, Any], edges: np.ndarray) -> np.ndarray:
    """An execution's numeric feature (its KLL ``buckets``) counted in the baseline's buckets
    ``edges``: each execution bucket's count is spread evenly over its range (values below the
    first edge fall in the first bucket, above the last in the last, as the local check clips)."""
    buckets = feature["numerical_statistics"]["distribution"]["kll"]["buckets"]

    def below(edge: float) -> float:
        mass = 0.0
        for bucket in buckets:
            lo, hi, count = float(bucket["lower_bound"]), float(bucket["upper_bound"]), float(bucket["count"])
            if hi <= edge:
                mass += count
            elif lo < edge:
                mass += count * (edge - lo) / (hi - lo)
        return mass

    total = sum(float(b["count"]) for b in buckets)
    cumulative = [below(float(edge)) for edge in edges[1:-1]] + [total]
    return np.diff(np.array([0.0] + cumulative))


def model_monitor_result(baseline_statistics: dict[str, Any], statistics: dict[str, Any],
                         violations: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Model Monitor data-quality execution's reports (its ``statistics.json`` and
    ``constraint_violations.json``) as the result :meth:`MonitoringAccumulator.result` makes.

    The verdict is Model Monitor's: its violations as they are, a feature drifts when a
    ``baseline_drift_check`` names it. Distances, PSI and plots are computed here from the two
    ``statistics.json`` files, with the local check's statistics (the execution's numeric
    buckets are spread over the baseline's bucket edges), for the report's table and plots.
    Fewer rows than ``monitoring.drift.min_rows`` is ``insufficient_data`` (no drift), as locally.
    """
    settings = settings or monitoring_settings(None)
    drift_settings = settings["drift"]
    try:
        found = {f["name"]: f for f in statistics["features"]}
        rows = int(statistics["dataset"]["item_count"])
        listed = list(violations.get("violations") or [])
    except (KeyError, TypeError, ValueError) as err:
        raise MonitoringError(f"the execution's reports are not Model Monitor's statistics/violations: {err!r}") from None
    drifted = {v.get("feature_name") for v in listed if v.get("constraint_check_type") == "baseline_drift_check"}
    features = []
    for spec in baseline_statistics["features"]:
        feature = _Feature(spec, 1.0, int(settings["max_categories"]))
        captured = found.get(feature.name)
        if captured is not None:
            stats = captured.get("numerical_statistics") or captured.get("string_statistics") or {}
            common = stats.get("common", {})
            feature.present, feature.missing = int(common.get("num_present", 0)), int(common.get("num_missing", 0))
            if feature.numeric and "numerical_statistics" in captured:
                feature.counts = _capture_buckets(captured, feature.edges)
            elif not feature.numeric and "string_statistics" in captured:
                buckets = captured["string_statistics"].get("distribution", {}).get("categorical", {}).get("buckets", [])
                feature.seen = {str(b["value"]): int(b["count"]) for b in buckets}
        statistic, psi, n, m = feature.distance()
        threshold = float(drift_settings["threshold_per_column"].get(feature.name, drift_settings["threshold"]))
        total = feature.present + feature.missing
        features.append({"name": feature.name, "inferred_type": feature.inferred_type,
                         "distance": round(statistic, 6), "threshold": threshold,
                         "noise_floor": round(_ks_critical(float(drift_settings["alpha"]), n, m), 6) if n and m else 1.0,
                         "psi": round(psi, 6), "drift": feature.name in drifted,
                         "completeness": round(feature.present / total, 6) if total else 1.0,
                         "type_conformance": 1.0, "plot": feature.plot_data()})
    enough = rows >= int(drift_settings["min_rows"])
    status = "insufficient_data" if not enough else "violations" if listed else "ok"
    return {"status": status, "drift": bool(enough and listed), "statistic": STATISTIC, "rows": rows,
            "unreadable_records": 0, "min_rows": int(drift_settings["min_rows"]),
            "drifted_features": [f["name"] for f in features if f["drift"]], "violations": listed,
            "features": features, "mean_probability": None, "model_quality": None}


def drift_reason(result: dict[str, Any]) -> str:
    """One sentence saying why a result is drift (for the Asset event and the lineage)."""
    if not result.get("drift"):
        return f"no drift ({result.get('status')}) on {result.get('rows', 0)} captured rows"
    kinds = sorted({v["constraint_check_type"] for v in result["violations"]})
    drifted = ", ".join(result["drifted_features"]) or "none"
    return (f"{len(result['violations'])} violation(s) ({', '.join(kinds)}) on {result['rows']} captured rows; "
            f"drifted features: {drifted}")


# ---------------------------------------------------------------- report
def monitoring_report_html(title: str, result: dict[str, Any]) -> str:
    """HTML: the verdict, the violations, a table of every feature and a baseline-vs-capture plot
    per feature (matplotlib PNGs inline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlops.ml.evaluation import _png
    from mlops.ml.report_html import render_report

    plots = []
    for feature in sorted(result["features"], key=lambda f: -f["distance"])[:12]:
        data = feature["plot"]
        fig, ax = plt.subplots(figsize=(5, 2.6))
        x = np.arange(len(data["labels"]))
        ax.bar(x - 0.2, data["baseline"], 0.4, label="baseline (training)")
        ax.bar(x + 0.2, data["capture"], 0.4, label="captured traffic")
        ax.set_xticks(x, data["labels"], rotation=45, fontsize=7)
        ax.set_title(f"{feature['name']}: distance {feature['distance']:.3f}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        plots.append((feature["name"], _png(fig)))
    quality = result.get("model_quality")
    quality = json.dumps(quality, indent=2) if quality else None
    return render_report("monitoring_report.html.j2", title=title, result=result, window=result.get("window", {}),
                         quality=quality, plots=plots)


def constraint_violations(result: dict[str, Any]) -> dict[str, Any]:
    """Model Monitor's ``constraint_violations.json`` of a result."""
    return {"violations": list(result["violations"])}
