"""Sensors: wait for a state outside Airflow (a decision in the model registry, ...)."""
