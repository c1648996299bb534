output "bootstrap_servers" {
  description = "Kafka bootstrap servers (fixed private IPs, port 9092)."
  value       = join(",", [for node in var.nodes : "${node.private_ip}:9092"])
}

output "instance_ids" {
  description = "EC2 instance ID of each node, by node id."
  value       = { for id, instance in aws_instance.node : id => instance.id }
}

output "data_volume_ids" {
  description = "EBS log volume ID of each node, by node id."
  value       = { for id, volume in aws_ebs_volume.data : id => volume.id }
}
