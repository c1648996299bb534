variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "subnet_id" {
  description = "Private subnet of the Airflow host."
  type        = string
}

variable "security_group_id" {
  description = "Security group of the Airflow host (no inbound; SSM Session Manager for access)."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type of the Airflow host."
  type        = string
  default     = "t3.large"
}

variable "ami_ssm_parameter" {
  description = "SSM parameter naming the AMI (Amazon Linux 2023 by default)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "artifacts_bucket" {
  description = "Bucket holding the cdclake wheel, pipeline.yaml and the Airflow requirements."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of artifacts_bucket."
  type        = string
}

variable "package_key" {
  description = "S3 key of the cdclake wheel."
  type        = string
}

variable "config_key" {
  description = "S3 key of pipeline.yaml (rendered with airflow.target: aws)."
  type        = string
}

variable "requirements_key" {
  description = "S3 key of the pinned Airflow requirements file."
  type        = string
}

variable "glue_job_arns" {
  description = "ARNs of the Glue jobs the DAGs start."
  type        = list(string)
}

variable "glue_role_arn" {
  description = "ARN of the Glue jobs' role (GlueJobOperator passes it)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the root volume and the bucket."
  type        = string
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
