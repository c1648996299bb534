# Every value here is rendered from pipeline.yaml by `cdclake deploy render --target aws`
# into terraform.tfvars.json; edit pipeline.yaml, not the rendered file.

variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "region" {
  description = "AWS region of the deployment."
  type        = string
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "availability_zones" {
  description = "The three availability zones."
  type        = list(string)
}

variable "private_subnet_cidrs" {
  description = "One private subnet per availability zone."
  type        = list(string)
}

variable "public_subnet_cidr" {
  description = "Subnet of the NAT gateway (outbound HTTPS for Airflow and Glue); null for none."
  type        = string
  default     = null
}

variable "kafka_nodes" {
  description = "The KRaft combined nodes: node id, fixed private IP, subnet index, server.properties."
  type = list(object({
    node_id           = number
    private_ip        = string
    subnet_index      = number
    server_properties = string
  }))
}

variable "kafka_cluster_id" {
  description = "KRaft cluster ID."
  type        = string
}

variable "kafka_instance_type" {
  description = "EC2 instance type of the brokers."
  type        = string
}

variable "kafka_volume_size_gb" {
  description = "gp3 log volume size per broker."
  type        = number
}

variable "kafka_volume_iops" {
  description = "gp3 IOPS per broker log volume."
  type        = number
}

variable "kafka_tarball_key" {
  description = "S3 key (in the lakehouse bucket) of the Apache Kafka binary tarball."
  type        = string
}

variable "connect_image" {
  description = "Kafka Connect + Debezium image (ECR)."
  type        = string
}

variable "connect_cpu" {
  description = "Fargate CPU units per Connect task."
  type        = number
}

variable "connect_memory" {
  description = "Fargate memory (MiB) per Connect task."
  type        = number
}

variable "connect_tasks" {
  description = "Number of Connect tasks."
  type        = number
}

variable "connect_worker_environment" {
  description = "Connect worker settings (image environment)."
  type        = map(string)
}

variable "db_password_secret_arn" {
  description = "Secrets Manager secret of the capture role's password."
  type        = string
}

variable "bucket_name" {
  description = "Lakehouse bucket name."
  type        = string
}

variable "namespace" {
  description = "Iceberg namespace (Glue database)."
  type        = string
}

variable "artifacts" {
  description = "Files uploaded to the bucket: S3 key => local path."
  type        = map(string)
}

variable "glue_jobs" {
  description = "The Glue jobs: name => script key, arguments, sizing."
  type = map(object({
    script_key        = string
    description       = string
    glue_version      = string
    worker_type       = string
    number_of_workers = number
    default_arguments = map(string)
  }))
}

variable "airflow_instance_type" {
  description = "EC2 instance type of the Airflow host."
  type        = string
}

variable "package_key" {
  description = "S3 key of the cdclake wheel."
  type        = string
}

variable "config_key" {
  description = "S3 key of pipeline.yaml."
  type        = string
}

variable "airflow_requirements_key" {
  description = "S3 key of the pinned Airflow requirements."
  type        = string
}

variable "source_parameter_family" {
  description = "RDS parameter group family of the source."
  type        = string
}

variable "source_parameters" {
  description = "Logical-replication parameters of the source."
  type        = map(string)
}
