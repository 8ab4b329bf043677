# The image every compose service runs: Airflow's official image plus this project's locked
# requirements, installed once at build time so the scheduler, the API server and the model
# runtime all import the same libraries the tests ran with.
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt constraints.txt /opt/airflow/project/
RUN pip install --no-cache-dir -r /opt/airflow/project/requirements.txt -c /opt/airflow/project/constraints.txt
