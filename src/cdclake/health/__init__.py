"""Probes of each component, shared by ``cdclake status`` and the Airflow health checks."""
