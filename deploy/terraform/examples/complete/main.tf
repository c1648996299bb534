# The whole deployment from the rendered variables:
#   cdclake deploy render --target aws --out build/aws
#   terraform -chdir=deploy/terraform/examples/complete apply -var rendered_tfvars=$PWD/build/aws/terraform.tfvars.json
# Artifact paths in the rendered file are relative to it.

locals {
  v   = jsondecode(file(var.rendered_tfvars))
  dir = dirname(abspath(var.rendered_tfvars))
}

module "cdclake" {
  source = "../.."

  name                       = local.v.name
  region                     = local.v.region
  tags                       = local.v.tags
  vpc_cidr                   = local.v.vpc_cidr
  availability_zones         = local.v.availability_zones
  private_subnet_cidrs       = local.v.private_subnet_cidrs
  public_subnet_cidr         = local.v.public_subnet_cidr
  kafka_nodes                = local.v.kafka_nodes
  kafka_cluster_id           = local.v.kafka_cluster_id
  kafka_instance_type        = local.v.kafka_instance_type
  kafka_volume_size_gb       = local.v.kafka_volume_size_gb
  kafka_volume_iops          = local.v.kafka_volume_iops
  kafka_tarball_key          = local.v.kafka_tarball_key
  connect_image              = local.v.connect_image
  connect_cpu                = local.v.connect_cpu
  connect_memory             = local.v.connect_memory
  connect_tasks              = local.v.connect_tasks
  connect_worker_environment = local.v.connect_worker_environment
  db_password_secret_arn     = local.v.db_password_secret_arn
  bucket_name                = local.v.bucket_name
  namespace                  = local.v.namespace
  artifacts                  = { for key, path in local.v.artifacts : key => "${local.dir}/${path}" }
  glue_jobs                  = local.v.glue_jobs
  airflow_instance_type      = local.v.airflow_instance_type
  package_key                = local.v.package_key
  config_key                 = local.v.config_key
  airflow_requirements_key   = local.v.airflow_requirements_key
  source_parameter_family    = local.v.source_parameter_family
  source_parameters          = local.v.source_parameters
}
