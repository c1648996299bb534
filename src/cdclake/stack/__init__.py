"""The embedded local stack: PostgreSQL, Kafka (KRaft) and Kafka Connect as processes."""
