"""Job scripts that run unchanged under ``spark-submit``/``python`` and as AWS Glue 5.1 jobs."""
