# cdclake on AWS: the reference architecture's deployment. Variables come from
# `cdclake deploy render --target aws` (terraform.tfvars.json).

provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111: a key policy's resource "*" is the key itself; the account root is the standard owner statement
  #checkov:skip=CKV_AWS_356: a key policy's resource "*" is the key itself, nothing wider
  #checkov:skip=CKV_AWS_109: the account root must manage its own key (AWS's default key policy)
  statement {
    sid       = "Account"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
  }
}

# One customer-managed key for the bucket, the volumes, the logs and the job bookmarks.
resource "aws_kms_key" "this" {
  description         = "${var.name}: lakehouse, Kafka volumes, logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

module "network" {
  source = "./modules/network"

  name                 = var.name
  vpc_cidr             = var.vpc_cidr
  availability_zones   = var.availability_zones
  private_subnet_cidrs = var.private_subnet_cidrs
  public_subnet_cidr   = var.public_subnet_cidr
  kms_key_arn          = aws_kms_key.this.arn
}

module "glue" {
  source = "./modules/glue"

  name              = var.name
  bucket_name       = var.bucket_name
  namespace         = var.namespace
  artifacts         = var.artifacts
  jobs              = var.glue_jobs
  subnet_id         = module.network.private_subnet_ids[0]
  availability_zone = var.availability_zones[0]
  security_group_id = module.network.security_group_ids["glue"]
  kms_key_arn       = aws_kms_key.this.arn
}

module "kafka" {
  source = "./modules/kafka"

  name                 = var.name
  subnet_ids           = module.network.private_subnet_ids
  security_group_id    = module.network.security_group_ids["kafka"]
  nodes                = var.kafka_nodes
  cluster_id           = var.kafka_cluster_id
  instance_type        = var.kafka_instance_type
  data_volume_size_gb  = var.kafka_volume_size_gb
  data_volume_iops     = var.kafka_volume_iops
  kafka_tarball_s3_uri = "s3://${module.glue.bucket_name}/${var.kafka_tarball_key}"
  artifacts_bucket_arn = module.glue.bucket_arn
  kms_key_arn          = aws_kms_key.this.arn
}

module "debezium" {
  source = "./modules/debezium"

  name                   = var.name
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  security_group_id      = module.network.security_group_ids["connect"]
  image                  = var.connect_image
  cpu                    = var.connect_cpu
  memory                 = var.connect_memory
  desired_count          = var.connect_tasks
  bootstrap_servers      = module.kafka.bootstrap_servers
  worker_environment     = var.connect_worker_environment
  db_password_secret_arn = var.db_password_secret_arn
  kms_key_arn            = aws_kms_key.this.arn
}

module "airflow" {
  source = "./modules/airflow"

  name                 = var.name
  subnet_id            = module.network.private_subnet_ids[0]
  security_group_id    = module.network.security_group_ids["airflow"]
  instance_type        = var.airflow_instance_type
  artifacts_bucket     = module.glue.bucket_name
  artifacts_bucket_arn = module.glue.bucket_arn
  package_key          = var.package_key
  config_key           = var.config_key
  requirements_key     = var.airflow_requirements_key
  glue_job_arns        = module.glue.job_arns
  glue_role_arn        = module.glue.role_arn
  kms_key_arn          = aws_kms_key.this.arn
}

module "query" {
  source = "./modules/query"

  name        = var.name
  bucket_name = module.glue.bucket_name
  kms_key_arn = aws_kms_key.this.arn
}

module "source" {
  source = "./modules/source"

  name       = var.name
  family     = var.source_parameter_family
  parameters = var.source_parameters
}
