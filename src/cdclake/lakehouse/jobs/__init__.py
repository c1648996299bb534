"""Job entry points that run unchanged under ``spark-submit`` and as AWS Glue 5.1 jobs."""
