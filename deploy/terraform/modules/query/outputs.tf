output "workgroup" {
  description = "Name of the Athena workgroup."
  value       = aws_athena_workgroup.this.name
}

output "result_location" {
  description = "S3 location of the query results."
  value       = "s3://${var.bucket_name}/athena-results/"
}
