"""The training logic behind ``train.py``, the SageMaker entry point, in modules by concern.

Shipped with ``train.py`` in the job's source directory (``sourcedir.tar.gz``): ``train.py``
puts its own folder on ``sys.path`` and imports this package; it imports only scikit-learn,
pandas, numpy and joblib (pyarrow for Parquet).

* :mod:`.config` -- hyperparameters on the command line, the data config, the estimators;
* :mod:`.data` -- the training rows, the fold manifest, features and target;
* :mod:`.model` -- the pipeline (features -> model), the final fit, the model files;
* :mod:`.cv` -- k-fold scoring, the metric lines SageMaker captures, spot checkpoints.
"""
