"""Kafka clients and topic administration shared by every stage."""
