variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the private DNS namespace (connect.<name>.internal)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnet IDs of the tasks."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the Connect tasks (8083 from inside the VPC)."
  type        = string
}

variable "image" {
  description = "Kafka Connect image with the Debezium PostgreSQL plugin (an ECR copy of quay.io/debezium/connect)."
  type        = string
}

variable "cpu" {
  description = "Fargate task CPU units (2048 = 2 vCPU)."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Fargate task memory in MiB."
  type        = number
  default     = 4096
}

variable "desired_count" {
  description = "Connect workers (tasks); two for HA as in the reference."
  type        = number
  default     = 2
}

variable "bootstrap_servers" {
  description = "Kafka bootstrap servers."
  type        = string
}

variable "worker_environment" {
  description = "Connect worker settings as the image's environment (group id, storage topics, converters), rendered by cdclake."
  type        = map(string)
}

variable "db_password_secret_arn" {
  description = "Secrets Manager secret holding the capture role's password; injected as CDCLAKE_SOURCE_PASSWORD, read by the connector as $${env:CDCLAKE_SOURCE_PASSWORD}."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the log group and the secret."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the Connect logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
