"""cdclake: PostgreSQL to an always-fresh Apache Iceberg lakehouse through Debezium and Kafka."""

__version__ = "0.1.0"
