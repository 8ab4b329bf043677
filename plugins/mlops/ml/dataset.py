"""Turn a validated partition into what training reads: train rows, a holdout and folds."""

from __future__ import annotations

from typing import Any

from mlops.core.config import PipelineConfig


def prepare_training_data(config: PipelineConfig, partition_uri: str, out_uri: str) -> dict[str, Any]:
    """Split off a holdout (never seen by CV or tuning), assign folds, write both as artifacts.

    Writes ``train.parquet``, ``holdout.parquet``, ``folds.json`` and the monitoring baseline
    (``baseline/statistics.json``, ``baseline/constraints.json``) under ``out_uri`` and returns the
    :class:`~mlops.backends.base.TrainingData` dict plus the holdout URI, dataset digest and baseline URIs.
    """
    from mlops.backends.base import TrainingData
    from mlops.core import partitions
    from mlops.core.storage import to_path, write_json
    from mlops.ml.folds import dataset_digest, fold_manifest, holdout_split

    training = config.section("training")
    classification = config.problem_type in ("binary", "multiclass")
    frame = partitions.read_partition(partition_uri)
    columns = [*config.feature_columns, config.target]
    frame = frame[columns]
    train, holdout = holdout_split(frame, config.target, training["holdout_fraction"], training["seed"],
                                   stratify=classification)
    train = train.reset_index(drop=True)
    manifest = fold_manifest(train, config.target, training["k_folds"], training["seed"],
                             strategy="stratified" if classification else "kfold")
    out = to_path(out_uri)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.parquet", train), ("holdout.parquet", holdout)):
        with (out / name).open("wb") as handle:
            part.to_parquet(handle, index=False)
    folds_uri = write_json(str(out / "folds.json"), manifest)
    # The registration baseline (Model Monitor's statistics.json and constraints.json) of the rows the
    # model learns from: what the monitor_model DAG checks prod traffic against.
    from mlops.ml.monitoring import monitoring_settings, write_baseline

    drift = monitoring_settings(config)["drift"]
    baseline = write_baseline(train, config.feature_columns, list(config.schema.get("categorical", [])),
                              str(out / "baseline"), threshold=float(drift["threshold"]), bins=int(drift["bins"]))
    data = TrainingData(
        train_uri=str(out / "train.parquet"),
        folds_uri=folds_uri,
        target=config.target,
        feature_columns=config.feature_columns,
        categorical=list(config.schema.get("categorical", [])),
        problem_type=config.problem_type,
        estimator=training["estimator"],
        objective=training["objective"],
        positive_label=config.schema.get("positive_label"),
        seed=training["seed"],
    )
    return {
        "training_data": data.to_dict(),
        "holdout_uri": str(out / "holdout.parquet"),
        "dataset_digest": dataset_digest(frame),
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        **baseline,
    }
