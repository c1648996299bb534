variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "private_subnet_cidrs" {
  description = "One private subnet CIDR per availability zone (three, as in the reference)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_cidrs) == 3
    error_message = "Give exactly three private subnet CIDRs, one per availability zone."
  }
}

variable "availability_zones" {
  description = "The three availability zones of the private subnets."
  type        = list(string)
}

variable "interface_endpoints" {
  description = "AWS services reached through interface endpoints (the subnets have no internet route)."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "ssm", "ssmmessages", "ec2messages", "glue", "sts", "athena"]
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow logs in CloudWatch."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key encrypting the flow logs."
  type        = string
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

variable "public_subnet_cidr" {
  description = "CIDR of the one public subnet holding the NAT gateway; null for no internet egress at all."
  type        = string
  default     = null
}

variable "internet_egress_groups" {
  description = "Security groups allowed HTTPS to the internet through the NAT (PyPI for Airflow and Glue's --additional-python-modules)."
  type        = list(string)
  default     = ["airflow", "glue"]
}
