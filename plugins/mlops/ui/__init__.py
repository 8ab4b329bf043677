"""What Airflow's UI shows: the operators' extra links and the reports app under /mlops/reports."""
