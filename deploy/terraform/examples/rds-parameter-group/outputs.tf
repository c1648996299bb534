output "attach_command" {
  description = "Attach the parameter group and reboot (static parameters apply at reboot)."
  value = join(" && ", [
    "aws rds modify-db-instance --db-instance-identifier ${var.db_instance_identifier} --db-parameter-group-name ${module.source.parameter_group_name} --apply-immediately",
    "aws rds reboot-db-instance --db-instance-identifier ${var.db_instance_identifier}",
  ])
}
