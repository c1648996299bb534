"""``cdclake sql``: query the lakehouse by the same table names on two engines.

- ``duckdb`` (default): no JVM; pyiceberg reads the tables Spark wrote (same catalog),
  DuckDB runs the SQL. Starts in about a second.
- ``spark``: Spark SQL with the Iceberg catalog, the reference's query layer.

Time travel uses Spark's syntax on both: ``cdc_db.silver_users VERSION AS OF <snapshot id>``
or ``TIMESTAMP AS OF '2026-01-01 10:00:00'``.
"""
