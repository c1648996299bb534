variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "family" {
  description = "DB parameter group family of the source instance (postgres15, aurora-postgresql15, ...)."
  type        = string
  default     = "postgres15"
}

variable "parameters" {
  description = "Logical-replication parameters rendered by cdclake (rds.logical_replication=1, slots, senders, WAL retention)."
  type        = map(string)
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
