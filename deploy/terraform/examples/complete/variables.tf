variable "rendered_tfvars" {
  description = "Path of the terraform.tfvars.json written by `cdclake deploy render --target aws`."
  type        = string
  default     = "rendered.tfvars.json" # the demo pipeline.yaml's, kept in step by tests/deploy
}
