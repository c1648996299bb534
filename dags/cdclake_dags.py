"""The DAGs Airflow loads: ``self_managed_cdc_pipeline`` and ``iceberg_maintenance``.

Rendered from ``$CDCLAKE_CONFIG`` (default: the checkout's pipeline.yaml) by
:mod:`cdclake.orchestration.dags`; ``airflow.target`` in that file picks local or AWS.
"""

from cdclake.orchestration.dags import dags_from_environment

globals().update(dags_from_environment())
