# Private network of the deployment: a VPC, one private subnet per AZ (plus an optional
# NAT for outbound HTTPS), and security groups that open only the reference's ports
# (9092 clients, 9093 quorum, 8083 Connect), and only from inside the VPC.

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = "${var.name}-vpc" })
}

# The default security group allows nothing.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_subnet" "private" {
  count = length(var.private_subnet_cidrs)

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.private_subnet_cidrs[count.index]
  availability_zone       = var.availability_zones[count.index]
  map_public_ip_on_launch = false
  tags                    = merge(var.tags, { Name = "${var.name}-private-${count.index + 1}" })
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# S3 without leaving the VPC (Glue jobs, Airflow, Kafka hosts fetching artifacts).
data "aws_region" "current" {}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  tags              = merge(var.tags, { Name = "${var.name}-s3" })
}

# AWS APIs through interface endpoints: Kafka, Connect and Glue never need the internet for them.
resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.interface_endpoints)

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.this["endpoint"].id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "${var.name}-${each.value}" })
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/${var.name}/vpc-flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "flow_write" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow.arn}:*"]
  }
}

module "flow_role" {
  source = "../service-role"

  name        = "${var.name}-vpc-flow-logs"
  service     = "vpc-flow-logs.amazonaws.com"
  policy_json = data.aws_iam_policy_document.flow_write.json
  tags        = var.tags
}

resource "aws_flow_log" "this" {
  vpc_id          = aws_vpc.this.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow.arn
  iam_role_arn    = module.flow_role.arn
  tags            = var.tags
}

locals {
  # Each group: the ports it opens to the VPC (nothing from 0.0.0.0/0).
  groups = {
    kafka    = { description = "Kafka brokers (9092) and KRaft controller quorum (9093)", ports = [9092, 9093] }
    connect  = { description = "Kafka Connect REST API (8083)", ports = [8083] }
    glue     = { description = "Glue job connection: self-referencing, as Glue requires", ports = [] }
    airflow  = { description = "Airflow host: no inbound; reached through SSM Session Manager", ports = [] }
    endpoint = { description = "Interface VPC endpoints (HTTPS)", ports = [443] }
  }
  ingress = merge([for group, spec in local.groups : {
    for port in spec.ports : "${group}-${port}" => { group = group, port = port }
  }]...)
}

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5: attached in the kafka, debezium, glue and airflow modules (module outputs, which checkov does not follow)
  for_each = local.groups

  name        = "${var.name}-${each.key}"
  description = each.value.description
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpc_security_group_ingress_rule" "vpc" {
  for_each = local.ingress

  security_group_id = aws_security_group.this[each.value.group].id
  description       = "port ${each.value.port} from inside the VPC"
  cidr_ipv4         = aws_vpc.this.cidr_block
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
}

# Glue workers talk to each other on every port of their own group (a Glue requirement).
resource "aws_vpc_security_group_ingress_rule" "glue_self" {
  security_group_id            = aws_security_group.this["glue"].id
  description                  = "Glue workers among themselves"
  referenced_security_group_id = aws_security_group.this["glue"].id
  ip_protocol                  = "-1"
}

# Egress stays inside the VPC (S3 through the gateway endpoint's prefix list).
resource "aws_vpc_security_group_egress_rule" "vpc" {
  for_each = local.groups

  security_group_id = aws_security_group.this[each.key].id
  description       = "anything inside the VPC"
  cidr_ipv4         = aws_vpc.this.cidr_block
  ip_protocol       = "-1"
}

resource "aws_vpc_security_group_egress_rule" "s3" {
  for_each = local.groups

  security_group_id = aws_security_group.this[each.key].id
  description       = "S3 through the gateway endpoint"
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# Optional internet egress (HTTPS only, outbound only) through one NAT gateway.
resource "aws_internet_gateway" "this" {
  count = var.public_subnet_cidr == null ? 0 : 1

  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-igw" })
}

resource "aws_subnet" "public" {
  count = var.public_subnet_cidr == null ? 0 : 1

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.public_subnet_cidr
  availability_zone       = var.availability_zones[0]
  map_public_ip_on_launch = false
  tags                    = merge(var.tags, { Name = "${var.name}-public-nat" })
}

resource "aws_route_table" "public" {
  count = var.public_subnet_cidr == null ? 0 : 1

  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  count = var.public_subnet_cidr == null ? 0 : 1

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = var.public_subnet_cidr == null ? 0 : 1

  subnet_id      = aws_subnet.public[0].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_eip" "nat" {
  #checkov:skip=CKV2_AWS_19: the EIP belongs to the NAT gateway, not to an instance
  count = var.public_subnet_cidr == null ? 0 : 1

  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-nat" })
}

resource "aws_nat_gateway" "this" {
  count = var.public_subnet_cidr == null ? 0 : 1

  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = merge(var.tags, { Name = "${var.name}-nat" })
}

resource "aws_route" "private_nat" {
  count = var.public_subnet_cidr == null ? 0 : 1

  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_vpc_security_group_egress_rule" "internet_https" {
  for_each = var.public_subnet_cidr == null ? toset([]) : toset(var.internet_egress_groups)

  security_group_id = aws_security_group.this[each.value].id
  description       = "HTTPS out through the NAT (package indexes)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
