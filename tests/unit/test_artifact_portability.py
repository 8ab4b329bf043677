"""Model artifacts load where the scikit-learn container loads them: scikit-learn and joblib, no dill.

Airflow imports dill when a task runs (``airflow.models.taskinstance``), and importing dill adds
its picklers to the standard library's pure-Python pickler, which joblib's pickler copies: an
artifact the local twin trains inside an Airflow task is pickled with dill's functions wherever
dill has one (a builtin type such as ``str`` became ``dill._dill._load_type('str')``), and then
loads only where dill is installed. These tests train in a process set up that way and load the
artifacts in one where importing dill is impossible.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from mlops.core.paths import PROJECT_ROOT

TRAIN = textwrap.dedent("""
    import pickle, sys
    import airflow.models.taskinstance  # what every Airflow task process has imported
    import dill
    assert pickle._Pickler.dispatch[type] is dill._dill.save_type, "dill did not extend pickle here"
    from mlops.core.entrypoints import generators_module, training_module
    train = training_module()
    frame = generators_module().churn(300, seed=5)
    features = ["State", "Area Code", "Int'l Plan", "Day Mins", "CustServ Calls"]
    for estimator, problem, target in [("gradient_boosting", "binary", "Churn?"), ("random_forest", "binary", "Churn?"),
                                       ("logistic_regression", "binary", "Churn?"), ("ridge", "regression", "Day Mins")]:
        config = {"target": target, "feature_columns": [c for c in features if c != target], "problem_type": problem,
                  "categorical": ["State", "Area Code", "Int'l Plan"], "estimator": estimator}
        model, meta = train.fit_full(frame, config, {})
        train.save_model(model, meta, f"{sys.argv[1]}/{estimator}")
""")

LOAD = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoDill(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "dill" or name.startswith("dill."):
                raise ImportError(f"dill is not installed in the scikit-learn container ({name})")

    sys.meta_path.insert(0, NoDill())
    import joblib
    from mlops.core.entrypoints import generators_module
    frame = generators_module().churn(5, seed=6)
    loaded = {}
    for estimator in sys.argv[2:]:
        model = joblib.load(f"{sys.argv[1]}/{estimator}/model.joblib")
        loaded[estimator] = len(model.predict(frame))
    assert "dill" not in sys.modules
    print(json.dumps(loaded))
""")
ESTIMATORS = ["gradient_boosting", "random_forest", "logistic_regression", "ridge"]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT / "plugins"), "HOME": "/tmp",
                               "PYTHONDONTWRITEBYTECODE": "1"})


def test_artifacts_trained_where_airflow_imported_dill_load_without_dill(tmp_path):
    trained = run(TRAIN, str(tmp_path))
    assert trained.returncode == 0, trained.stderr[-3000:]

    loaded = run(LOAD, str(tmp_path), *ESTIMATORS)

    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert json.loads(loaded.stdout) == dict.fromkeys(ESTIMATORS, 5)
