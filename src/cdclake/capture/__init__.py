"""Capture: the Debezium connector on Kafka Connect, its topics and its replication slot."""
