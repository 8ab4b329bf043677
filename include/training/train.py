"""Training entry point in the SageMaker scikit-learn container's contract.

The one implementation of the training logic. SageMaker runs this file unchanged as the
``entry_point`` of its scikit-learn container (and of every training job of an HPO job); the
local backend (``mlops.backends.local.training``) loads this same file and calls its functions.
It imports only scikit-learn, pandas, numpy and joblib (pyarrow for Parquet).

Command line (SageMaker passes every hyperparameter as ``--name value``)::

    python train.py --estimator gradient_boosting --learning_rate 0.1 --max_iter 200 \\
        --target 'Churn?' --problem_type binary --objective roc_auc --positive_label True. \\
        --feature_columns '["State", "Day Mins"]' --categorical '["State"]' --seed 42

Values are JSON (as the SageMaker Python SDK encodes them), Python literals (as SageMaker's
training toolkit re-renders decoded values: ``['a', 'b']``, ``False``) or plain text
(:func:`decode_value`); lists are lists of column names. The names in
:data:`CONFIG_KEYS` describe the data; every other name is a hyperparameter of the estimator
(``sagemaker_*`` and ``_*`` names, added by SageMaker itself, are ignored).

Environment (SageMaker's defaults apply when a variable is unset):

``SM_CHANNEL_TRAIN``     folder with the training rows: every ``.parquet``/``.csv`` file (CSV with
                         a header row), read in sorted path order and concatenated.
``SM_CHANNEL_FOLDS``     optional folder (or file) with one fold manifest JSON
                         (``mlops.ml.folds``): when present, k-fold CV runs before the final fit.
``SM_MODEL_DIR``         receives ``model.joblib`` and ``model.json`` (``include/serving/inference.py``).
``SM_OUTPUT_DATA_DIR``   receives ``metrics.json``.
``SM_NUM_CPUS``          folds are scored in parallel over this many processes (default 1).
``/opt/ml/checkpoints``  when it exists (managed spot training with a ``CheckpointConfig``), each
                         finished fold's score is kept there and a restarted job skips it
                         (``MLOPS_CHECKPOINT_DIR`` names another folder).

Metric lines on stdout, for SageMaker metric definitions (:func:`metric_definitions`): after
each fold its score and the running mean over the folds so far, then the spread::

    fold=0 roc_auc=0.912345;
    cv_mean roc_auc=0.912345;
    fold=1 roc_auc=0.907655;
    cv_mean roc_auc=0.910000;
    cv_std roc_auc=0.002345;

The last ``cv_mean`` is the mean over all k folds: the value SageMaker records as the final
metric of the job (``FinalMetricDataList`` keeps a metric's last value) and the objective an
HPO job maximises; the earlier ones let its early stopping act after each fold.

``--final_fit false`` (an HPO trial) scores the folds and skips the final fit on every row.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The helpers sit next to this file (``mlops_train/``, in the same source directory SageMaker
# unpacks): run as a script its folder is on ``sys.path`` already; loaded by file path (the
# local backend) it is not, so it is added here.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from mlops_train.config import (  # noqa: E402
    CLASSIFICATION,
    CONFIG_KEYS,
    DATA_FILE_SUFFIXES,
    DEFAULT_OBJECTIVES,
    ESTIMATORS,
    NUMBER_PATTERN,
    PROBLEM_TYPES,
    TRAIN_ONLY_FOLD,
    EstimatorSpec,
    _flag,
    _plain,
    check_hyperparameters,
    decode_value,
    encode_hyperparameters,
    estimator_class,
    parse_hyperparameters,
    split_hyperparameters,
    training_config,
)
from mlops_train.cv import (  # noqa: E402
    FoldScorer,
    cross_validate,
    fold_checkpoint,
    fold_metric_line,
    metric_definitions,
    read_fold_checkpoint,
    running_mean_line,
    write_fold_checkpoint,
)
from mlops_train.data import (  # noqa: E402
    encode_target,
    feature_frame,
    fold_splits,
    read_fold_manifest,
    read_training_frame,
)
from mlops_train.model import (  # noqa: E402
    build_features,
    build_model,
    build_pipeline,
    dump_model,
    fit_full,
    save_model,
)

__all__ = [
    "CLASSIFICATION", "CONFIG_KEYS", "DATA_FILE_SUFFIXES", "DEFAULT_OBJECTIVES", "ESTIMATORS", "NUMBER_PATTERN",
    "PROBLEM_TYPES", "TRAIN_ONLY_FOLD", "EstimatorSpec", "FoldScorer", "build_features", "build_model",
    "build_pipeline", "check_hyperparameters", "cross_validate", "decode_value", "dump_model",
    "encode_hyperparameters", "encode_target", "estimator_class", "feature_frame", "fit_full", "fold_checkpoint",
    "fold_metric_line", "fold_splits", "main", "metric_definitions", "parse_hyperparameters",
    "read_fold_checkpoint", "read_fold_manifest", "read_training_frame", "running_mean_line", "save_model",
    "split_hyperparameters", "training_config", "write_failure", "write_fold_checkpoint", "_flag", "_plain",
]


# ---------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run a training job as SageMaker does: CV on the fold manifest if given, then the final fit.

    ``--final_fit false`` skips the final fit (an HPO trial only needs its CV score; the refit
    is a training job of its own). Folds run in parallel over ``SM_NUM_CPUS`` processes.
    """
    values = parse_hyperparameters(sys.argv[1:] if argv is None else list(argv))
    config_values, hyperparameters = split_hyperparameters(values)
    config = training_config(config_values)
    final_fit = _flag(config_values.get("final_fit", True), "final_fit")
    check_hyperparameters(config["estimator"], config["problem_type"], hyperparameters)
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    train_dir = Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    folds_dir = os.environ.get("SM_CHANNEL_FOLDS")
    if folds_dir is None and Path("/opt/ml/input/data/folds").exists():
        folds_dir = "/opt/ml/input/data/folds"
    n_jobs = max(1, int(os.environ.get("SM_NUM_CPUS") or 1))
    checkpoint_dir = Path(os.environ.get("MLOPS_CHECKPOINT_DIR", "/opt/ml/checkpoints"))
    if not folds_dir and not final_fit:
        raise ValueError("final_fit=false needs a folds channel: there would be nothing to do")

    frame = read_training_frame(train_dir)
    objective = config["objective"]
    print(
        f"training {config['estimator']} ({config['problem_type']}) on {len(frame)} rows, "
        f"hyperparameters {json.dumps(hyperparameters, sort_keys=True)}",
        flush=True,
    )
    metrics: dict[str, Any] = {
        "objective": objective,
        "estimator": config["estimator"],
        "hyperparameters": hyperparameters,
        "n_rows": int(len(frame)),
    }
    if folds_dir:
        manifest = read_fold_manifest(folds_dir)
        checkpoint = fold_checkpoint(checkpoint_dir, manifest, config, hyperparameters)
        known = read_fold_checkpoint(checkpoint)
        if known:
            print(f"resuming from {checkpoint}: folds {sorted(known)} already scored", flush=True)
        so_far: list[float] = []

        def on_fold(fold: int, score: float) -> None:
            so_far.append(score)
            print(fold_metric_line(fold, objective, score), flush=True)
            print(running_mean_line(objective, float(np.mean(so_far))), flush=True)
            if checkpoint is not None and fold not in known:
                known[fold] = score
                write_fold_checkpoint(checkpoint, known)

        scores = cross_validate(
            frame, manifest, config, hyperparameters, n_jobs=n_jobs, on_fold=on_fold, known=dict(known)
        )
        mean, std = float(np.mean(scores)), float(np.std(scores))
        print(f"cv_std {objective}={std:.6f};", flush=True)
        metrics.update(k=len(scores), fold_scores=scores, cv_mean=mean, cv_std=std,
                       fold_manifest_k=manifest.get("k"), fold_manifest_seed=manifest.get("seed"),
                       dataset_digest=manifest.get("dataset_digest"))

    if final_fit:
        estimator, meta = fit_full(frame, config, hyperparameters)
        save_model(estimator, meta, model_dir)
        print(f"model written to {model_dir}", flush=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(
        json.dumps(_plain(metrics), indent=2, sort_keys=True), encoding="utf-8"
    )
    return metrics


def write_failure(error: BaseException, output_dir: str | Path | None = None) -> None:
    """Write ``error`` to SageMaker's failure file, which the job reports as its ``FailureReason``.

    The container's toolkit runs this script without capturing its stderr, so the failure it
    would write itself only says the script exited 1; it keeps a failure file that exists.
    """
    directory = Path(output_dir or os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    if directory.is_dir():
        (directory / "failure").write_text(f"{type(error).__name__}: {error}"[:1024], encoding="utf-8")


if __name__ == "__main__":
    try:
        main()
    except Exception as err:
        write_failure(err)
        raise
