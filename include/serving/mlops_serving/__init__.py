"""The serving handlers' parts behind ``inference.py``, the SageMaker entry point, in modules by concern.

Shipped with ``inference.py`` in the serving source directory (``sourcedir.tar.gz``):
``inference.py`` puts its own folder on ``sys.path`` and imports this package; it needs only
numpy, pandas and joblib (scikit-learn to compile a pipeline, pyarrow for the columnar path).

* :mod:`.records` -- the loaded model, request refusals and the row-by-row parsing of records;
* :mod:`.compiled` -- the compiled fast path: the feature step as lookup tables, trees as arrays;
* :mod:`.columnar` -- many records at once (a batch transform's mini-batch), column by column.
"""
