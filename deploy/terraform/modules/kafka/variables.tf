variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnet IDs; node i lives in subnet_ids[nodes[i].subnet_index]."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the brokers (9092 and 9093 from inside the VPC)."
  type        = string
}

variable "nodes" {
  description = "The KRaft combined nodes, rendered by `cdclake deploy render`: node id, fixed private IP, subnet, server.properties."
  type = list(object({
    node_id           = number
    private_ip        = string
    subnet_index      = number
    server_properties = string
  }))

  validation {
    condition     = length(var.nodes) == 3
    error_message = "The reference's quorum has three combined nodes; render them with `cdclake deploy render`."
  }
}

variable "cluster_id" {
  description = "KRaft cluster ID every node formats its storage with."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type of the brokers."
  type        = string
  default     = "m5.xlarge"
}

variable "data_volume_size_gb" {
  description = "Size of each node's Kafka log volume (gp3)."
  type        = number
  default     = 500
}

variable "data_volume_iops" {
  description = "Provisioned IOPS of each gp3 log volume."
  type        = number
  default     = 3000
}

variable "ami_ssm_parameter" {
  description = "SSM parameter naming the AMI (Amazon Linux 2023 by default)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "kafka_tarball_s3_uri" {
  description = "s3:// URI of the Apache Kafka binary tarball (the subnets have no internet route)."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket the hosts read the tarball from."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the EBS volumes."
  type        = string
}

variable "snapshot_retention_count" {
  description = "Daily EBS snapshots kept per log volume."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
