# The source on Amazon RDS / Aurora: a parameter group with logical replication on.
# Attach it to the instance (examples/rds-parameter-group) and reboot: the static
# parameters apply only after a reboot (`cdclake source init` says so until they do).

locals {
  is_aurora = startswith(var.family, "aurora")
}

resource "aws_db_parameter_group" "this" {
  count = local.is_aurora ? 0 : 1

  name   = "${var.name}-logical-replication"
  family = var.family

  dynamic "parameter" {
    for_each = var.parameters
    content {
      name         = parameter.key
      value        = parameter.value
      apply_method = "pending-reboot"
    }
  }

  tags = var.tags
}

# Aurora sets rds.logical_replication on the cluster parameter group.
resource "aws_rds_cluster_parameter_group" "this" {
  count = local.is_aurora ? 1 : 0

  name   = "${var.name}-logical-replication"
  family = var.family

  dynamic "parameter" {
    for_each = var.parameters
    content {
      name         = parameter.key
      value        = parameter.value
      apply_method = "pending-reboot"
    }
  }

  tags = var.tags
}
