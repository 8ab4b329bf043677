"""Developer tools for running the project on one machine: the demo, the web UI, Airflow's components
on a metadata database of their own, the CeleryExecutor's settings, and the Keyspaces sample loader.

Nothing under ``plugins/`` imports these; Airflow's workers never load them.

Run them from the repository root (``python -m tools.demo``), or with the root on ``PYTHONPATH``
ahead of site-packages: Airflow's dependency cron-descriptor installs a ``tools`` namespace of its
own, which this regular package only wins against when it comes first on the path."""
