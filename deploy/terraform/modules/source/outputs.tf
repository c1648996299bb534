output "parameter_group_name" {
  description = "Name of the parameter group to attach to the source instance (or Aurora cluster)."
  value       = one(concat(aws_db_parameter_group.this[*].name, aws_rds_cluster_parameter_group.this[*].name))
}
