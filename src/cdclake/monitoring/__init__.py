"""Monitoring: the Prometheus exporter for cdclake's own metrics and its configuration."""
