"""The PostgreSQL source: connections, preparation for logical replication, demo data."""
