variable "region" {
  description = "AWS region of the source instance."
  type        = string
}

variable "db_instance_identifier" {
  description = "Identifier of the existing RDS PostgreSQL instance to prepare for CDC."
  type        = string
}

variable "family" {
  description = "Parameter group family of that instance."
  type        = string
  default     = "postgres15"
}
