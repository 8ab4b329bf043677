"""A small churn-like model and its training data, for the data capture and monitoring tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from mlops.core.storage import pack_model

FEATURES = ["plan", "tenure", "charges", "calls"]
CATEGORICAL = ["plan"]
NUMERIC = ["tenure", "charges", "calls"]
TARGET = "churn"


def churn_like_frame(rows: int, seed: int, shift: bool = False) -> pd.DataFrame:
    """Feature rows from the training distribution; ``shift``: ``charges`` and ``plan`` moved."""
    rng = np.random.default_rng(seed)
    plans = ["basic", "plus", "pro"]
    return pd.DataFrame({
        "plan": rng.choice(plans, rows, p=[0.1, 0.2, 0.7] if shift else [0.5, 0.3, 0.2]),
        "tenure": rng.integers(0, 60, rows),
        "charges": (rng.normal(95, 15, rows) if shift else rng.normal(60, 15, rows)).round(2),
        "calls": rng.poisson(2, rows),
    })


def labels_of(frame: pd.DataFrame) -> np.ndarray:
    churn = ((frame["plan"] == "basic") & (frame["tenure"] < 24)) | (frame["charges"] > 80)
    return np.where(churn, "yes", "no")


@dataclass(frozen=True)
class ChurnLikeModel:
    uri: str
    sha256: str
    training: pd.DataFrame  # features and target, the rows it was fitted on


def churn_like_model(home: Path, rows: int = 2000, flip: bool = False) -> ChurnLikeModel:
    """Fit, write in inference.py's artifact contract (with a schema), pack under ``home``'s data;
    ``flip``: a model that learnt the opposite labels (a candidate that disagrees with everything)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = churn_like_frame(rows, seed=11)
    target = labels_of(frame)
    if flip:
        target = np.where(target == "yes", "no", "yes")
    estimator = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), CATEGORICAL), remainder="passthrough"),
        LogisticRegression(max_iter=2000),
    ).fit(frame[FEATURES], target)
    name = "churn-like-flipped" if flip else "churn-like"
    model_dir = home / f"model-src-{name}"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": FEATURES, "target": TARGET, "problem_type": "binary", "classes": ["no", "yes"],
        "framework": "sklearn", "categorical": CATEGORICAL,
    }))
    uri, sha = pack_model(model_dir, (home / "data" / "models" / name / "model.tar.gz").as_uri())
    return ChurnLikeModel(uri, sha, frame.assign(**{TARGET: target}))
