"""The AWS deployment: Terraform variables rendered from pipeline.yaml, and the cost model."""
