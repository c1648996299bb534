output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "IDs of the private subnets, in the order of private_subnet_cidrs."
  value       = aws_subnet.private[*].id
}

output "security_group_ids" {
  description = "Security group ID of each component: kafka, connect, glue, airflow."
  value       = { for name, group in aws_security_group.this : name => group.id }
}
