output "bootstrap_servers" {
  description = "kafka.bootstrap_servers for pipeline.yaml."
  value       = module.cdclake.bootstrap_servers
}

output "glue_job_names" {
  description = "The Glue jobs."
  value       = module.cdclake.glue_job_names
}

output "airflow_instance_id" {
  description = "The Airflow host."
  value       = module.cdclake.airflow_instance_id
}
