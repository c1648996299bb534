# The lakehouse on AWS: one bucket (warehouse, checkpoints, artifacts), the Glue database,
# and the bronze/silver/gold (+ verify, maintenance) Glue 5.1 jobs running cdclake's own
# job scripts with Iceberg enabled.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_144: cross-region replication is a disaster-recovery choice per deployment, not a default
  #checkov:skip=CKV2_AWS_62: no consumer listens to bucket events; Glue jobs are scheduled by Airflow
  #checkov:skip=CKV_AWS_18: access logging needs a second, log-only bucket; enable it with the account's central log bucket
  bucket = var.bucket_name
  tags   = var.tags
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Iceberg's own maintenance expires snapshots; S3 only cleans what versioning keeps.
resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    id     = "noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_object" "artifact" {
  for_each = var.artifacts

  bucket      = aws_s3_bucket.lake.id
  key         = each.key
  source      = each.value
  source_hash = filemd5(each.value)
  kms_key_id  = var.kms_key_arn
  tags        = var.tags
}

resource "aws_glue_catalog_database" "lake" {
  name         = var.namespace
  location_uri = "s3://${aws_s3_bucket.lake.id}/iceberg/${var.namespace}.db"
}

resource "aws_glue_connection" "vpc" {
  name            = "${var.name}-vpc"
  connection_type = "NETWORK"

  physical_connection_requirements {
    availability_zone      = var.availability_zone
    subnet_id              = var.subnet_id
    security_group_id_list = [var.security_group_id]
  }

  tags = var.tags
}

resource "aws_glue_security_configuration" "this" {
  name = "${var.name}-kms"

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = var.kms_key_arn
    }
    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = var.kms_key_arn
    }
    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = var.kms_key_arn
    }
  }
}

resource "aws_glue_job" "this" {
  for_each = var.jobs

  name                   = each.key
  description            = each.value.description
  role_arn               = module.role.arn
  glue_version           = each.value.glue_version
  worker_type            = each.value.worker_type
  number_of_workers      = each.value.number_of_workers
  connections            = [aws_glue_connection.vpc.name]
  security_configuration = aws_glue_security_configuration.this.name
  default_arguments      = each.value.default_arguments

  command {
    name            = "glueetl"
    python_version  = "3"
    script_location = "s3://${aws_s3_bucket.lake.id}/${each.value.script_key}"
  }

  execution_property {
    max_concurrent_runs = 1
  }

  tags       = var.tags
  depends_on = [aws_s3_object.artifact]
}

locals {
  catalog_arn = "arn:${data.aws_partition.current.partition}:glue:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
}

# Least privilege: this bucket, this Glue database and its tables, the job log groups, the key.
data "aws_iam_policy_document" "glue" {
  #checkov:skip=CKV_AWS_111: only the VpcConnection statement has resource "*": ec2:CreateNetworkInterface and the Describe calls take no resource ARN
  statement {
    sid       = "Bucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.lake.arn]
  }
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.lake.arn}/*"]
  }
  statement {
    sid = "Catalog"
    actions = ["glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:CreateTable",
    "glue:UpdateTable", "glue:DeleteTable", "glue:GetPartitions", "glue:BatchGetPartition"]
    resources = [
      "${local.catalog_arn}:catalog",
      "${local.catalog_arn}:database/${var.namespace}",
      "${local.catalog_arn}:table/${var.namespace}/*",
    ]
  }
  statement {
    sid       = "Connection"
    actions   = ["glue:GetConnection"]
    resources = ["${local.catalog_arn}:connection/${aws_glue_connection.vpc.name}"]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"]
    resources = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/aws-glue/*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    # The VPC connection: Glue creates and removes ENIs in the subnet; these EC2 calls
    # take no resource ARNs.
    sid = "VpcConnection"
    actions = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeVpcEndpoints", "ec2:DescribeRouteTables",
    "ec2:DescribeVpcAttribute", "ec2:CreateTags", "ec2:DeleteTags"]
    resources = ["*"] #checkov:skip=CKV_AWS_356: EC2 Describe* and the ENI calls support no resource-level permissions
  }
}

module "role" {
  source = "../service-role"

  name        = "${var.name}-glue"
  service     = "glue.amazonaws.com"
  policy_json = data.aws_iam_policy_document.glue.json
  tags        = var.tags
}
