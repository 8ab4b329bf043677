"""Airflow triggers this project adds where the amazon provider has none."""
