output "bucket_name" {
  description = "Name of the lakehouse bucket."
  value       = aws_s3_bucket.lake.id
}

output "bucket_arn" {
  description = "ARN of the lakehouse bucket."
  value       = aws_s3_bucket.lake.arn
}

output "role_name" {
  description = "IAM role the Glue jobs run as (airflow.aws.iam_role_name)."
  value       = module.role.name
}

output "job_names" {
  description = "Names of the Glue jobs."
  value       = sort(keys(aws_glue_job.this))
}

output "database_name" {
  description = "Glue database of the Iceberg tables."
  value       = aws_glue_catalog_database.lake.name
}

output "role_arn" {
  description = "ARN of the Glue jobs' IAM role."
  value       = module.role.arn
}

output "job_arns" {
  description = "ARNs of the Glue jobs."
  value       = [for job in aws_glue_job.this : job.arn]
}
