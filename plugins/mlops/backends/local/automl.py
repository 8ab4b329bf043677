"""Local twin of SageMaker Autopilot (AutoML V2): FLAML searches, candidates are refit and packed.

Why one module of this length: one twin of one service (job records, the search, candidate
refit and packing), and :class:`CandidateModel` must keep its import path, which packed
candidates name when they are loaded.

A job is a JSON record ``<state_dir>/jobs/<job_name>.json`` (status ``InProgress``,
``Completed`` or ``Failed``/``Stopped`` with a reason) written atomically; creating a job whose
record says Completed attaches to it instead of searching again (as on Autopilot, the job must
answer the same question: target, problem type and objective; its data, budget and output
location are its own). Each estimator FLAML tried
becomes one candidate: its best configuration is refit on all training rows and packed in the
project's model artifact contract (see :mod:`mlops.backends.base`) at
``<output_uri>/<job_name>/candidates/<candidate_name>/model.tar.gz``. ``create_model`` records
a SageMaker-style model (``<state_dir>/models/<model_name>.json``): the candidate's artifact,
its digest and the ``SAGEMAKER_INFERENCE_OUTPUT`` environment the SageMaker SDK sets for
``inference_response_keys``.

Candidates are :class:`CandidateModel` objects: FLAML's own data preparation (categories with a
``__NAN__`` level, median-imputed numbers, labels encoded) in front of the native estimator
(LightGBM, XGBoost or scikit-learn) with FLAML's best parameters. Loading one needs this module
on the path (``plugins/``), as every local runtime has.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.backends.base import AutoML, Candidate, JobHandle
from mlops.core.storage import write_text_atomic

log = logging.getLogger(__name__)

COMPLETED, IN_PROGRESS, FAILED, STOPPED = "Completed", "InProgress", "Failed", "Stopped"
PROBLEM_TYPES = {"binary": "BinaryClassification", "multiclass": "MulticlassClassification",
                 "regression": "Regression"}
# Autopilot objective -> (FLAML metric for binary, for multiclass or regression, higher is better)
OBJECTIVES: dict[str, tuple[str, str, bool]] = {
    "AUC": ("roc_auc", "roc_auc_ovr", True),
    "Accuracy": ("accuracy", "accuracy", True),
    "F1": ("f1", "", True),
    "F1macro": ("macro_f1", "macro_f1", True),
    "LogLoss": ("log_loss", "log_loss", False),
    "MSE": ("mse", "mse", False),
    "RMSE": ("rmse", "rmse", False),
    "MAE": ("mae", "mae", False),
    "R2": ("r2", "r2", True),
}
REGRESSION_OBJECTIVES = ("MSE", "RMSE", "MAE", "R2")
# CPU estimators, in FLAML's names; lrl1 is a classifier only.
ESTIMATORS = ("lgbm", "xgboost", "rf", "extra_tree", "lrl1")
NATIVE_CATEGORIES = ("lgbm",)  # the others see category codes, as FLAML gives them
NAN_CATEGORY = "__NAN__"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# What makes a job's models answer the same question. Attaching to a Completed job by name
# (a retry, or a run told to reuse a job) needs these to match; training data, budget and
# output location may differ, as on Autopilot, and are logged.
JOB_IDENTITY = ("target", "problem_type", "objective")
AUTOML_JOB_NAME_MAX = 32  # AutoMLJobName


class JobEnded(RuntimeError):
    """The job of that name ended Failed or Stopped earlier: final, as on SageMaker."""


def check_name(kind: str, name: str) -> str:
    """SageMaker's resource-name rule: letters, digits and hyphens, at most 63 characters."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"{kind} name {name!r} must be 1-63 letters, digits or hyphens, starting and ending "
            "with a letter or digit (SageMaker's rule)"
        )
    return name


def objective_metric(objective: str, problem_type: str) -> tuple[str, bool]:
    """FLAML's metric for an Autopilot objective name and whether higher is better."""
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type {problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
    if objective not in OBJECTIVES:
        raise ValueError(
            f"Autopilot objective {objective!r} is not supported; choose from {', '.join(OBJECTIVES)}"
        )
    if (problem_type == "regression") != (objective in REGRESSION_OBJECTIVES):
        allowed = [o for o in OBJECTIVES if (o in REGRESSION_OBJECTIVES) == (problem_type == "regression")]
        raise ValueError(
            f"objective {objective!r} does not apply to a {problem_type} problem; choose from "
            f"{', '.join(allowed)}"
        )
    binary_metric, other_metric, higher = OBJECTIVES[objective]
    metric = binary_metric if problem_type == "binary" else other_metric
    if not metric:
        raise ValueError(f"objective {objective!r} is for binary problems only; use F1macro")
    return metric, higher


def installed_estimators(problem_type: str) -> list[str]:
    """The CPU estimators whose libraries import here (xgboost comes from the xgboost-cpu wheel)."""
    names = []
    for name in ESTIMATORS:
        if name == "lrl1" and problem_type == "regression":
            continue
        module = {"lgbm": "lightgbm", "xgboost": "xgboost"}.get(name)
        if module:
            try:
                __import__(module)
            except ImportError:
                log.warning("estimator %s skipped: %s is not installed", name, module)
                continue
        names.append(name)
    return names


def _plain(value: Any) -> Any:
    """JSON-safe copy of ``value`` (numpy scalars and arrays become Python values)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _category_key(value: Any) -> str:
    """One text form per category value, so ``415`` (training) and ``415.0`` or ``"415"`` (a CSV
    request after numeric coercion) are the same category."""
    import pandas as pd

    if pd.isna(value):
        return NAN_CATEGORY
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_categorical(series) -> bool:
    """Text, category and boolean columns are categorical; the rest are numbers."""
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    import json

    write_text_atomic(path, json.dumps(_plain(payload), indent=2, sort_keys=True))


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the candidate model
class CandidateModel:
    """A refit AutoML candidate: FLAML's data preparation in front of a native estimator.

    Follows the model artifact contract: ``predict`` and, for classifiers, ``predict_proba`` and
    ``classes_`` (the original labels, sorted), taking a DataFrame of the feature columns.

    :param estimator: FLAML's estimator name (``lgbm``, ``xgboost``, ``rf``, ``extra_tree``,
        ``lrl1``); ``lgbm`` gets pandas categories, the others category codes, as in FLAML.
    :param estimator_class: the native class, e.g. ``lightgbm.LGBMClassifier``.
    :param params: its constructor parameters (FLAML's best configuration, converted).
    :param problem_type: ``binary``, ``multiclass`` or ``regression``.
    """

    def __init__(self, estimator: str, estimator_class: type, params: dict[str, Any], problem_type: str):
        self.estimator = estimator
        self.estimator_class = estimator_class
        self.params = params
        self.problem_type = problem_type

    @property
    def is_classifier(self) -> bool:
        return self.problem_type in ("binary", "multiclass")

    def fit(self, X, y) -> CandidateModel:
        import numpy as np
        import pandas as pd

        # FLAML's DataTransformer: constant or all-distinct text columns and constant numbers
        # are dropped; categories sorted with __NAN__ added last; numbers median-imputed.
        self.feature_columns_ = [str(c) for c in X.columns]
        self.categories_: dict[str, list[str]] = {}
        self.medians_: dict[str, float] = {}
        for column in X.columns:
            series = X[column]
            if is_categorical(series):
                keys = [_category_key(v) for v in series.tolist()]
                present = sorted(set(keys))
                distinct = len(set(k for k in keys if k != NAN_CATEGORY))
                if len(present) == 1 or distinct == int(series.notna().sum()):
                    continue
                self.categories_[column] = present + ([] if NAN_CATEGORY in present else [NAN_CATEGORY])
            elif series.nunique(dropna=True) >= 2:
                self.medians_[column] = float(pd.to_numeric(series, errors="coerce").median())
        target = np.asarray(y)
        if self.is_classifier:
            self.classes_, target = np.unique(target, return_inverse=True)
        self.model_ = self.estimator_class(**self.params).fit(self._encode(X), target)
        return self

    def _encode(self, X):
        import pandas as pd

        missing = [c for c in self.feature_columns_ if c not in X.columns]
        if missing:
            from mlops.core.messages import name_list

            raise ValueError(f"input lacks feature columns: {name_list(missing)}")
        columns = {}
        for column, categories in self.categories_.items():
            values = pd.Series([_category_key(v) for v in X[column].tolist()], index=X.index,
                               dtype=pd.CategoricalDtype(categories))
            columns[column] = values if self.estimator in NATIVE_CATEGORIES else values.cat.codes
        for column, median in self.medians_.items():
            numbers = pd.to_numeric(X[column], errors="coerce").astype("float64")
            columns[column] = numbers.fillna(median)
        return pd.DataFrame(columns, index=X.index)

    def predict_proba(self, X):
        if not self.is_classifier:
            raise AttributeError("a regression candidate has no predict_proba")
        return self.model_.predict_proba(self._encode(X))

    def predict(self, X):
        if self.is_classifier:
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return self.model_.predict(self._encode(X))


def read_training_frame(train_uri: str):
    """Rows of a parquet or csv file, or of every such file under a folder, in name order."""
    import pandas as pd

    from mlops.core.storage import to_path

    root = to_path(train_uri)
    if root.is_file():
        files = [root]
    else:
        files = sorted(
            (p for p in root.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv")
             and not p.name.startswith((".", "_"))),
            key=str,
        )
    if not files:
        raise ValueError(f"no .parquet or .csv training files at {train_uri}")
    frames = []
    for path in files:
        with path.open("rb") as handle:
            frames.append(pd.read_csv(handle) if path.suffix == ".csv" else pd.read_parquet(handle))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# ---------------------------------------------------------------- the AutoML port
class FlamlAutoML(AutoML):
    """Autopilot's local twin: FLAML searches, every estimator it tried becomes a candidate.

    :param state_dir: folder for job and model records (``jobs/``, ``models/``).
    :param n_jobs: threads per trial and per refit. One thread per trial runs several times
        more trials in a time budget on a busy machine (no OpenMP oversubscription); ``-1``
        uses all cores, for large training sets.
    :param seed: FLAML's search seed and the refit estimators' random state.
    """

    def __init__(self, state_dir: Path, n_jobs: int = 1, seed: int = 0):
        self.state_dir = Path(state_dir)
        self.n_jobs = n_jobs
        self.seed = seed

    # ------------------------------------------------------------ records
    def _job_path(self, job_name: str) -> Path:
        return self.state_dir / "jobs" / f"{check_name('AutoML job', job_name)}.json"

    def _model_path(self, model_name: str) -> Path:
        return self.state_dir / "models" / f"{check_name('model', model_name)}.json"

    def describe_job(self, job_name: str) -> dict[str, Any]:
        """The job record, like ``DescribeAutoMLJobV2``; ``KeyError`` naming an unknown job."""
        path = self._job_path(job_name)
        if not path.is_file():
            raise KeyError(f"no AutoML job named {job_name!r} in {path.parent}")
        return _read_json(path)

    # ------------------------------------------------------------ create or attach
    def submit(
        self, job_name: str, train_uri: str, target: str, problem_type: str, objective: str,
        max_candidates: int, time_budget_s: int, output_uri: str, local_time_budget_s: int | None = None,
    ) -> JobHandle:
        """Run (or attach to) the job here and now; the handle is done and carries
        ``{"job_name", "status", "candidates"}`` (ranked best first), as on Autopilot.

        A job of that name that Failed or was Stopped is final, as on SageMaker: the next name is
        tried (``<name>-r2`` ... ``-r9``) and the first one not ended that way runs or is attached
        to; the handle names it.
        """
        from mlops.core.naming import MAX_ATTEMPTS, attempt_name

        for attempt in range(1, MAX_ATTEMPTS + 1):
            name = attempt_name(job_name, attempt, AUTOML_JOB_NAME_MAX)
            try:
                status = self.create_or_attach(name, train_uri, target, problem_type, objective, max_candidates,
                                               time_budget_s, output_uri, local_time_budget_s)
            except JobEnded as ended:
                log.warning("%s; the retry uses the next name", ended)
                continue
            return JobHandle(kind="automl", name=name, done=True, result={
                "job_name": name, "status": status,
                "candidates": [c.to_dict() for c in self.candidates(name)],
            })
        raise RuntimeError(f"AutoML job {job_name}: {MAX_ATTEMPTS} attempts ended Failed or Stopped "
                           f"({job_name} ... {attempt_name(job_name, MAX_ATTEMPTS, AUTOML_JOB_NAME_MAX)})")

    def create_or_attach(
        self, job_name: str, train_uri: str, target: str, problem_type: str, objective: str,
        max_candidates: int, time_budget_s: int, output_uri: str, local_time_budget_s: int | None = None,
    ) -> str:
        """Run the job, or attach to a Completed one of that name, and return its status (what
        :meth:`submit` does here and now; see :meth:`~mlops.backends.base.AutoML.submit`).

        The job's settings are checked as Autopilot checks them (:func:`mlops.backends.limits.check_automl_job`:
        the name, candidates, the job budget ``time_budget_s``); FLAML then searches for
        ``local_time_budget_s`` seconds (default: the whole job budget), never longer than the job's.
        A training set under Autopilot's 500 rows fails the job, as it does on SageMaker.

        :raises JobEnded: the job of that name Failed or was Stopped before (:meth:`submit` moves
            on to the next name).
        :raises RuntimeError: the job fails now (its record says Failed, with the reason).
        """
        from mlops.backends.limits import check_automl_job

        check_automl_job(job_name, max_candidates, time_budget_s, objective=objective)
        metric, _ = objective_metric(objective, problem_type)
        search_s = int(time_budget_s) if local_time_budget_s is None else int(local_time_budget_s)
        if not 1 <= search_s <= int(time_budget_s):
            raise ValueError(f"autopilot.local_time_budget_s={local_time_budget_s} is not 1 to the job's "
                             f"time_budget_s ({time_budget_s})")
        spec = {
            "train_uri": train_uri, "target": target, "problem_type": problem_type,
            "objective": objective, "max_candidates": int(max_candidates),
            "time_budget_s": int(time_budget_s), "search_budget_s": search_s, "output_uri": output_uri.rstrip("/"),
        }
        path = self._job_path(job_name)
        if path.is_file():
            record = _read_json(path)
            status = record["status"]
            if status in (FAILED, STOPPED):
                raise JobEnded(f"AutoML job {job_name} {status}: {record.get('failure_reason')}")
            if status == COMPLETED:
                changed = sorted(k for k in spec if record["spec"].get(k) != spec[k])
                different = [k for k in changed if k in JOB_IDENTITY]
                if different:
                    raise ValueError(
                        f"AutoML job {job_name} exists with a different "
                        + ", ".join(f"{k} ({record['spec'].get(k)!r}, asked {spec[k]!r})" for k in different)
                        + "; use a new job name for a new configuration"
                    )
                if changed:
                    log.warning("attaching to AutoML job %s as it was run: its %s differ from this request",
                                job_name, ", ".join(changed))
                log.info("AutoML job %s is Completed: attaching (%d candidates)", job_name,
                         len(record["candidates"]))
                return COMPLETED
            if status == IN_PROGRESS and self._runs_elsewhere(record):
                raise RuntimeError(
                    f"AutoML job {job_name} is InProgress in process {record['pid']} on "
                    f"{record['host']}; retry once it has finished"
                )
            log.warning("AutoML job %s was left %s by a process that is gone: running it again",
                        job_name, status)
        record = {
            "job_name": job_name, "status": IN_PROGRESS, "failure_reason": None, "spec": spec,
            "problem_type_autopilot": PROBLEM_TYPES[problem_type], "flaml_metric": metric,
            "candidates": [], "best_candidate": None, "created_at": _utcnow(), "ended_at": None,
            "timings": {}, "pid": os.getpid(), "host": socket.gethostname(),
        }
        _write_json_atomic(path, record)
        try:
            record.update(self._run(job_name, spec, metric))
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            record.update(status=FAILED, failure_reason=reason, ended_at=_utcnow())
            _write_json_atomic(path, record)
            log.error("AutoML job %s Failed: %s", job_name, reason)
            raise RuntimeError(f"AutoML job {job_name} Failed: {reason}") from err
        record.update(status=COMPLETED, ended_at=_utcnow())
        _write_json_atomic(path, record)
        return COMPLETED

    @staticmethod
    def _runs_elsewhere(record: dict[str, Any]) -> bool:
        if record.get("host") != socket.gethostname() or record.get("pid") == os.getpid():
            return False
        try:
            os.kill(int(record["pid"]), 0)
        except (OSError, ValueError, TypeError):
            return False
        return True

    def _run(self, job_name: str, spec: dict[str, Any], metric: str) -> dict[str, Any]:
        import joblib
        from flaml import AutoML as FlamlSearch

        from mlops.backends.limits import check_automl_rows
        from mlops.core.storage import pack_model

        started = time.monotonic()
        frame = read_training_frame(spec["train_uri"])
        target, problem_type = spec["target"], spec["problem_type"]
        if target not in frame.columns:
            raise ValueError(f"target column {target!r} is not in {spec['train_uri']}")
        unlabelled = int(frame[target].isna().sum())
        if unlabelled:
            log.warning("dropping %d rows without a %s label", unlabelled, target)
            frame = frame[frame[target].notna()].reset_index(drop=True)
        check_automl_rows(len(frame), f"training data {spec['train_uri']}")
        features = frame.drop(columns=[target])
        labels = frame[target]
        if problem_type != "regression":
            n_classes = labels.nunique()
            if (problem_type == "binary") != (n_classes == 2) or n_classes < 2:
                raise ValueError(f"{problem_type} problem but {target} has {n_classes} classes")
        search_frame = features.copy()
        for column in search_frame.columns:
            if is_categorical(search_frame[column]):
                search_frame[column] = search_frame[column].map(_category_key).astype("category")

        estimators = installed_estimators(problem_type)
        search = FlamlSearch()
        search_started = time.monotonic()
        search.fit(
            search_frame, labels,
            task="regression" if problem_type == "regression" else "classification",
            metric=metric, estimator_list=estimators, time_budget=spec["search_budget_s"],
            seed=self.seed, n_jobs=self.n_jobs, retrain_full=False, verbose=0,
            log_file_name=str(self.state_dir / "jobs" / f"{job_name}.flaml.log"),
        )
        searched = time.monotonic()
        losses = {name: loss for name, loss in search.best_loss_per_estimator.items()
                  if loss is not None and loss < float("inf")}
        if not losses:
            raise RuntimeError(f"FLAML tried no estimator within {spec['search_budget_s']} s")
        ranked = sorted(losses, key=lambda name: (losses[name], estimators.index(name)))
        ranked = ranked[: spec["max_candidates"]]
        _, higher = objective_metric(spec["objective"], problem_type)

        candidates = []
        for rank, name in enumerate(ranked, 1):
            refit_started = time.monotonic()
            trained = search.best_model_for_estimator(name)
            params = dict(trained.params)
            if "n_jobs" in params:
                params["n_jobs"] = self.n_jobs
            model = CandidateModel(name, trained.estimator_class, params, problem_type).fit(features, labels)
            candidate_name = f"{job_name}-c{rank}-{name.replace('_', '-')}"
            loss = float(losses[name])
            value = 1.0 - loss if higher else loss
            meta = {
                "feature_columns": model.feature_columns_, "target": target,
                "problem_type": problem_type,
                "classes": _plain(list(model.classes_)) if model.is_classifier else [],
                "framework": "flaml", "estimator": name, "candidate": candidate_name,
                "objective_metric": spec["objective"], "objective_value": value,
            }
            model_uri = f"{spec['output_uri']}/{job_name}/candidates/{candidate_name}/model.tar.gz"
            with tempfile.TemporaryDirectory(prefix="mlops-automl-") as tmp:
                joblib.dump(model, Path(tmp) / "model.joblib")
                _write_json_atomic(Path(tmp) / "model.json", meta)
                model_uri, sha256 = pack_model(Path(tmp), model_uri)
            candidates.append(Candidate(
                name=candidate_name, objective_metric=spec["objective"], objective_value=value,
                model_uri=model_uri,
                detail={
                    "job_name": job_name, "rank": rank, "estimator": name, "sha256": sha256,
                    "problem_type": problem_type, "flaml_metric": metric, "validation_loss": loss,
                    "config": _plain(search.best_config_per_estimator[name]),
                    "params": _plain({k: v for k, v in params.items() if k != "n_jobs"}),
                    "refit_seconds": round(time.monotonic() - refit_started, 3),
                },
            ).to_dict())
            log.info("candidate %s %s=%.4f -> %s", candidate_name, spec["objective"], value, model_uri)
        finished = time.monotonic()
        return {
            "candidates": candidates,
            "best_candidate": candidates[0]["name"],
            "rows": int(len(frame)),
            "feature_columns": [str(c) for c in features.columns],
            "trials": len(search.config_history),
            "estimators_searched": estimators,
            "timings": {
                "prepare_seconds": round(search_started - started, 3),
                "search_seconds": round(searched - search_started, 3),
                "refit_seconds": round(finished - searched, 3),
                "total_seconds": round(finished - started, 3),
            },
        }

    # ------------------------------------------------------------ candidates
    def candidates(self, job_name: str) -> list[Candidate]:
        record = self.describe_job(job_name)
        if record["status"] != COMPLETED:
            raise RuntimeError(
                f"AutoML job {job_name} is {record['status']}, it has no candidates"
                + (f": {record['failure_reason']}" if record.get("failure_reason") else "")
            )
        _, higher = objective_metric(record["spec"]["objective"], record["spec"]["problem_type"])
        ranked = [Candidate.from_dict(c) for c in record["candidates"]]
        return sorted(ranked, key=lambda c: -c.objective_value if higher else c.objective_value)

    def probability_of(self, candidate: Candidate) -> str | None:
        """The serving handlers' meaning of ``probability``: the second label's (the positive
        class, as Autopilot's HYPERPARAMETER_TUNING mode gives it) for a binary model, the
        predicted label's for a multiclass one, none for regression."""
        return {"binary": "positive_class", "multiclass": "predicted_label"}.get(candidate.detail.get("problem_type"))

    # ------------------------------------------------------------ models
    def create_model(self, model_name: str, candidate: Candidate, response_keys: list[str]) -> str:
        """Record a model (like ``CreateModel``) serving ``candidate`` with ``response_keys``.

        The candidate must be one of its job's recorded candidates; its recorded digest goes
        into the model. Returns the model name (what a transform job takes).
        """
        if isinstance(candidate, dict):
            candidate = Candidate.from_dict(candidate)
        job_name = candidate.detail.get("job_name")
        if not job_name:
            raise ValueError(f"candidate {candidate.name} does not name its AutoML job")
        recorded = next((c for c in self.candidates(job_name) if c.name == candidate.name), None)
        if recorded is None or recorded.model_uri != candidate.model_uri:
            raise ValueError(f"candidate {candidate.name} is not a candidate of AutoML job {job_name}")
        return self.register_model(
            model_name, recorded.model_uri, recorded.detail["sha256"], recorded.detail["problem_type"],
            response_keys, source={"job_name": job_name, "candidate": recorded.name},
        )

    def register_model(
        self, model_name: str, model_uri: str, sha256: str, problem_type: str, response_keys: list[str],
        source: dict[str, Any] | None = None,
    ) -> str:
        """``CreateModel`` for any artifact in the model contract (``create_model`` uses this).

        :param response_keys: keys of ``SAGEMAKER_INFERENCE_OUTPUT``, checked against
            ``inference.RESPONSE_KEYS`` and ``problem_type`` (regression: ``predicted_label``
            only); empty means the container's default.
        :param source: where the artifact comes from (AutoML job and candidate), recorded.

        Creating the same model again is a no-op; the same name with a different artifact,
        digest or keys is a ``ValueError``.
        """
        from mlops.core.entrypoints import inference_module

        keys = [str(k).strip().lower() for k in response_keys]
        if len(set(keys)) != len(keys):
            raise ValueError(f"response keys {keys} repeat a key")
        inference = inference_module()
        probe = inference.LoadedModel(estimator=None, feature_columns=[], problem_type=problem_type,
                                      classes=[], target="")
        environment = {"SAGEMAKER_INFERENCE_OUTPUT": ",".join(keys)} if keys else {}
        inference.response_keys(probe, environment)  # raises ValueError naming a bad key
        content = {
            "ModelName": model_name,
            "PrimaryContainer": {"ModelDataUrl": model_uri, "Environment": environment},
            "sha256": sha256,
            "problem_type": problem_type,
            "response_keys": keys,
            "source": source or {},
        }
        path = self._model_path(model_name)
        if path.is_file():
            existing = _read_json(path)
            if {k: existing.get(k) for k in content} != _plain(content):
                raise ValueError(
                    f"model {model_name} exists with different content (artifact "
                    f"{existing['PrimaryContainer']['ModelDataUrl']}, response keys "
                    f"{existing.get('response_keys')}); use a new model name"
                )
            return model_name
        _write_json_atomic(path, {
            **content,
            "ModelArn": f"arn:aws:sagemaker:local:000000000000:model/{model_name.lower()}",
            "CreationTime": _utcnow(),
        })
        log.info("model %s: %s, response keys %s", model_name, model_uri, keys or "default")
        return model_name

    def describe_model(self, model_name: str) -> dict[str, Any]:
        """The model record, like ``DescribeModel``; ``KeyError`` naming an unknown model."""
        path = self._model_path(model_name)
        if not path.is_file():
            raise KeyError(f"no model named {model_name!r} in {path.parent}")
        return _read_json(path)
