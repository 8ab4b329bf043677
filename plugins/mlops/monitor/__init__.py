"""Watching the prod model: the monitor_model DAG's steps (capture since the last run, checked against
the registration baseline, the drift Asset) and the shadow replay of captured prod traffic against a
staging candidate. The statistics themselves are :mod:`mlops.ml.monitoring`."""
