output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "Name of the Connect ECS service."
  value       = aws_ecs_service.connect.name
}

output "password_reference" {
  description = "What the connector config puts as database.password."
  value       = "$${env:${local.password_env}}"
}

output "connect_url" {
  description = "connect.url of the deployed pipeline.yaml."
  value       = "http://connect.${aws_service_discovery_private_dns_namespace.this.name}:8083"
}
