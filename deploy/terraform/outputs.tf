output "bootstrap_servers" {
  description = "kafka.bootstrap_servers for pipeline.yaml."
  value       = module.kafka.bootstrap_servers
}

output "bucket_name" {
  description = "The lakehouse bucket."
  value       = module.glue.bucket_name
}

output "glue_role_name" {
  description = "airflow.aws.iam_role_name for pipeline.yaml."
  value       = module.glue.role_name
}

output "glue_job_names" {
  description = "The Glue jobs."
  value       = module.glue.job_names
}

output "connect_service" {
  description = "ECS cluster and service of the Debezium Connect workers."
  value       = "${module.debezium.cluster_name}/${module.debezium.service_name}"
}

output "connect_url" {
  description = "connect.url for pipeline.yaml."
  value       = module.debezium.connect_url
}

output "connector_password_reference" {
  description = "database.password of the connector (a config-provider reference)."
  value       = module.debezium.password_reference
}

output "airflow_instance_id" {
  description = "Airflow host (aws ssm start-session --target <id>)."
  value       = module.airflow.instance_id
}

output "athena_workgroup" {
  description = "Athena workgroup of the query layer."
  value       = module.query.workgroup
}

output "source_parameter_group" {
  description = "Parameter group to attach to the source RDS instance."
  value       = module.source.parameter_group_name
}
