# Debezium on Kafka Connect (distributed mode) as an ECS Fargate service. The database
# password reaches the worker only as an ECS secret (Secrets Manager -> environment);
# the connector refers to it through Connect's env config provider, never literally.

data "aws_region" "current" {}

resource "aws_ecs_cluster" "this" {
  name = "${var.name}-connect"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "connect" {
  name              = "/${var.name}/debezium-connect"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

locals {
  password_env = "CDCLAKE_SOURCE_PASSWORD"
  # The worker settings (config providers included) are cdclake's, rendered from pipeline.yaml.
  environment = merge(var.worker_environment, { BOOTSTRAP_SERVERS = var.bootstrap_servers })
}

resource "aws_ecs_task_definition" "connect" {
  #checkov:skip=CKV_AWS_336: the Debezium image writes its config, logs and plugin cache under /kafka at start-up
  family                   = "${var.name}-debezium-connect"
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  execution_role_arn       = module.execution_role.arn
  task_role_arn            = module.task_role.arn

  container_definitions = jsonencode([{
    name                   = "debezium"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = false
    environment            = [for key in sort(keys(local.environment)) : { name = key, value = local.environment[key] }]
    secrets                = [{ name = local.password_env, valueFrom = var.db_password_secret_arn }]
    portMappings           = [{ containerPort = 8083, protocol = "tcp" }]
    healthCheck = {
      command  = ["CMD-SHELL", "curl -fs http://localhost:8083/ || exit 1"]
      interval = 30
      retries  = 3
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.connect.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "debezium"
      }
    }
  }])

  tags = var.tags
}

resource "aws_ecs_service" "connect" {
  name            = "${var.name}-debezium-connect"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.connect.arn
  desired_count   = var.desired_count
  launch_type     = "FARGATE"

  service_registries {
    registry_arn = aws_service_discovery_service.connect.arn
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }

  tags = var.tags
}

# connect.<name>.internal:8083 resolves to the running tasks (connect.url on AWS).
resource "aws_service_discovery_private_dns_namespace" "this" {
  name = "${var.name}.internal"
  vpc  = var.vpc_id
  tags = var.tags
}

resource "aws_service_discovery_service" "connect" {
  name = "connect"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  tags = var.tags
}

# Execution role: pull the image, write logs, read exactly the one secret.
data "aws_iam_policy_document" "execution" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.db_password_secret_arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

module "execution_role" {
  source = "../service-role"

  name                = "${var.name}-connect-execution"
  service             = "ecs-tasks.amazonaws.com"
  policy_json         = data.aws_iam_policy_document.execution.json
  managed_policy_arns = ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]
  tags                = var.tags
}

# Task role: the worker itself calls no AWS API.
module "task_role" {
  source = "../service-role"

  name    = "${var.name}-connect-task"
  service = "ecs-tasks.amazonaws.com"
  tags    = var.tags
}
