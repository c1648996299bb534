output "instance_id" {
  description = "EC2 instance ID of the Airflow host (aws ssm start-session --target ...)."
  value       = aws_instance.airflow.id
}

output "private_ip" {
  description = "Private IP of the Airflow host."
  value       = aws_instance.airflow.private_ip
}
