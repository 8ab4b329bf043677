"""Data validation with Great Expectations 1.x core and batch-level checks against the last accepted
snapshot.

A suite is a JSON file ``include/expectations/<name>.json``::

    {
      "name": "churn",
      "notes": "why the bounds are what they are",
      "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["State", "..."]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Phone"}},
        ...
      ]
    }

``expectations`` is a plain GE 1.x expectation list (``type`` + ``kwargs``, optional ``notes`` and
``meta``): column set, types, required columns, ranges, value sets, key uniqueness, row-count
bounds and constant-column guards. What depends on the pipeline rather than on the data's shape
comes from the pipeline config's ``validation`` section (:class:`ValidationSettings`):

* ``extra_columns`` (``fail`` | ``warn``) sets ``exact_match`` of ``expect_table_columns_to_match_set``;
* ``min_rows`` overrides the lower bound of ``expect_table_row_count_to_be_between``;
* ``drift``, ``row_count`` and ``leakage`` configure batch-level checks computed in pandas (:mod:`~mlops.validation.checks`).
  GE core's nearest expectations do not fit: ``expect_column_kl_divergence_to_be_less_than``
  needs a hand-built partition object and has no allowance for sample size (a 100-row batch of
  an unchanged source would fail), and a row-count bound relative to the previous batch or a
  feature-vs-label leakage test has no GE core expectation. Their outcomes share the report's
  shape, so the summary, quarantine and HTML report treat them like expectations:

  * ``check_label_column_present``: the label (``schema.target``) must be in the batch;
  * ``check_no_label_leakage``: no feature may map one-to-one onto the label, nor a numeric one
    correlate with it beyond ``leakage.max_abs_correlation``;
  * ``check_row_count_against_snapshot``: at most ``row_count.max_drop`` fewer rows than the
    last accepted snapshot;
  * ``check_feature_drift_against_snapshot``: each column's population stability index (PSI)
    against the snapshot stays within ``drift.psi_max`` plus the PSI that sampling noise alone
    gives for the two sample sizes.

The snapshot is the :func:`profile_frame` of the last batch that passed (quantile bins for
numeric columns, frequencies for categorical ones, the row count). The operator stores it; this
package only computes and compares, so the same code runs on ``file://`` and ``s3://``.
Without a snapshot (the first run) the snapshot checks pass with a note.

The package's modules:

* :mod:`~mlops.validation.settings`: :class:`ValidationSettings`, read from the pipeline config;
* :mod:`~mlops.validation.suite`: suite files and the Great Expectations runner;
* :mod:`~mlops.validation.checks`: the batch-level checks and :func:`profile_frame`;
* :mod:`~mlops.validation.values`: JSON-safe values and bounded lists of them for messages;
* :mod:`~mlops.validation.report`: :class:`ValidationReport` and :class:`DataValidationError`;
* :mod:`~mlops.validation.validate`: :func:`validate_frame`, which runs the suite and the checks;
* :mod:`~mlops.validation.html`: the readable HTML report.

The strict reader for landed CSV files is ingestion: :mod:`mlops.ingest.csv_files`.

Operators import these modules and DAG files import operators, so nothing heavy is imported at
module level: great_expectations (several seconds), numpy and pandas are imported inside the
functions.
"""