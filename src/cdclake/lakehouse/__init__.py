"""The lakehouse: bronze, silver and gold Apache Iceberg tables built by Spark jobs.

- :mod:`configuration`: the plan resolved from pipeline.yaml, names and property keys;
- :mod:`spark`: the Spark session (local JDBC catalog or AWS Glue + S3FileIO);
- :mod:`bronze`, :mod:`silver`, :mod:`gold`, :mod:`maintenance`: the layers;
- :mod:`runner`: ``cdclake run``; :mod:`jobs`: spark-submit / AWS Glue entry points.
"""
