"""Developer tools for running the project on one machine: the demo, the web UI, Airflow's components
on a metadata database of their own, the CeleryExecutor's settings, and the Keyspaces sample loader.

Nothing under ``plugins/`` imports these; Airflow's workers never load them."""
