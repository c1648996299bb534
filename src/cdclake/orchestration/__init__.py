"""Orchestration: the reference's Airflow DAGs, rendered from pipeline.yaml, and a local Airflow.

- :mod:`~cdclake.orchestration.configuration`: the ``airflow:`` section (no Airflow import);
- :mod:`~cdclake.orchestration.jobs`: each job rendered for its target (spark-submit or Glue);
- :mod:`~cdclake.orchestration.tasks`: what the DAG's tasks run (health checks, local jobs);
- :mod:`~cdclake.orchestration.dags`: the DAG factory (imports Airflow);
- :mod:`~cdclake.orchestration.server`: ``cdclake airflow up | down`` (its own virtualenv).
"""
