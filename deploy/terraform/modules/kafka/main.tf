# Three KRaft combined nodes on EC2. Each node's address (an ENI with a fixed private IP)
# and its log volume are resources of their own: replacing an instance re-attaches both,
# so the new instance rejoins the quorum with the same node id (the reference's runbook).

data "aws_ssm_parameter" "ami" {
  name = var.ami_ssm_parameter
}

locals {
  nodes   = { for node in var.nodes : tostring(node.node_id) => node }
  log_dir = "/var/lib/kafka/data"
}

data "aws_subnet" "node" {
  for_each = local.nodes

  id = var.subnet_ids[each.value.subnet_index]
}

resource "aws_network_interface" "node" {
  for_each = local.nodes

  subnet_id       = data.aws_subnet.node[each.key].id
  private_ips     = [each.value.private_ip]
  security_groups = [var.security_group_id]
  tags            = merge(var.tags, { Name = "${var.name}-kafka-${each.key}" })
}

resource "aws_ebs_volume" "data" {
  for_each = local.nodes

  availability_zone = data.aws_subnet.node[each.key].availability_zone
  size              = var.data_volume_size_gb
  type              = "gp3"
  iops              = var.data_volume_iops
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  tags              = merge(var.tags, { Name = "${var.name}-kafka-${each.key}-data", "cdclake:snapshot" = "${var.name}-kafka" })

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_instance" "node" {
  for_each = local.nodes

  ami                  = data.aws_ssm_parameter.ami.value
  instance_type        = var.instance_type
  iam_instance_profile = module.role.instance_profile_name
  ebs_optimized        = true
  monitoring           = true
  availability_zone    = data.aws_subnet.node[each.key].availability_zone

  network_interface {
    network_interface_id = aws_network_interface.node[each.key].id
    device_index         = 0
  }

  metadata_options {
    http_tokens   = "required"
    http_endpoint = "enabled"
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }

  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/templates/user-data.sh.tftpl", {
    node_id              = each.value.node_id
    server_properties    = each.value.server_properties
    cluster_id           = var.cluster_id
    volume_id            = aws_ebs_volume.data[each.key].id
    log_dir              = local.log_dir
    kafka_tarball_s3_uri = var.kafka_tarball_s3_uri
  })

  tags = merge(var.tags, { Name = "${var.name}-kafka-${each.key}", Role = "controller,broker" })
}

resource "aws_volume_attachment" "data" {
  for_each = local.nodes

  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[each.key].id
  instance_id = aws_instance.node[each.key].id
}

# IAM: read the Kafka tarball, be managed through SSM (no SSH, no open port 22).
data "aws_iam_policy_document" "kafka" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["${var.artifacts_bucket_arn}/artifacts/*"]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

module "role" {
  source = "../service-role"

  name                = "${var.name}-kafka"
  service             = "ec2.amazonaws.com"
  policy_json         = data.aws_iam_policy_document.kafka.json
  managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
  instance_profile    = true
  tags                = var.tags
}

# Backup: daily snapshots of the log volumes (the reference's "manual EBS snapshots", automated).
module "dlm_role" {
  source = "../service-role"

  name                = "${var.name}-kafka-snapshots"
  service             = "dlm.amazonaws.com"
  managed_policy_arns = ["arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"]
  tags                = var.tags
}

resource "aws_dlm_lifecycle_policy" "data" {
  description        = "${var.name} Kafka log volumes, daily"
  execution_role_arn = module.dlm_role.arn
  state              = "ENABLED"

  policy_details {
    resource_types = ["VOLUME"]
    target_tags    = { "cdclake:snapshot" = "${var.name}-kafka" }

    schedule {
      name      = "daily"
      copy_tags = true

      create_rule {
        interval      = 24
        interval_unit = "HOURS"
        times         = ["03:00"]
      }

      retain_rule {
        count = var.snapshot_retention_count
      }
    }
  }

  tags = var.tags
}
