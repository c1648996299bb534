variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "bucket_name" {
  description = "S3 bucket of the warehouse, the job scripts, the cdclake package and the checkpoints."
  type        = string
}

variable "namespace" {
  description = "Glue database (Iceberg namespace) of the bronze/silver/gold tables."
  type        = string
}

variable "artifacts" {
  description = "Files uploaded to the bucket: S3 key => local path (job scripts, pipeline.yaml, the cdclake wheel), rendered by cdclake."
  type        = map(string)
}

variable "jobs" {
  description = "Glue jobs rendered by cdclake: name => script key, arguments (catalog conf included), sizing."
  type = map(object({
    script_key        = string
    description       = string
    glue_version      = string
    worker_type       = string
    number_of_workers = number
    default_arguments = map(string)
  }))
}

variable "subnet_id" {
  description = "Private subnet of the Glue network connection (reaches Kafka)."
  type        = string
}

variable "availability_zone" {
  description = "Availability zone of subnet_id."
  type        = string
}

variable "security_group_id" {
  description = "Self-referencing security group of the Glue workers."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the bucket, the job logs and bookmarks."
  type        = string
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
