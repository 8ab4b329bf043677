"""MLOps pipeline code: operators, hooks, backends (aws and local twins) and ML functions.

Airflow puts ``plugins/`` on ``sys.path``, so DAG files import this package as ``mlops``.
Nothing here imports pandas, scikit-learn or boto3 at module level: DAG files import
operators from this package and must stay fast to parse.
"""
