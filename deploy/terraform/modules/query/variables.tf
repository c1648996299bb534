variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "bucket_name" {
  description = "Bucket of the query results (the lakehouse bucket, under athena-results/)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the query results."
  type        = string
}

variable "bytes_scanned_cutoff" {
  description = "Per-query scan limit in bytes (a runaway query stops here)."
  type        = number
  default     = 107374182400
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
