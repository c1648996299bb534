variable "name" {
  description = "Name of the role (and of its instance profile)."
  type        = string
}

variable "service" {
  description = "AWS service principal that assumes the role, e.g. ec2.amazonaws.com."
  type        = string
}

variable "policy_json" {
  description = "Inline policy of the role; null for none."
  type        = string
  default     = null
}

variable "managed_policy_arns" {
  description = "AWS-managed policies attached to the role."
  type        = list(string)
  default     = []
}

variable "instance_profile" {
  description = "Also create an EC2 instance profile for the role."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
