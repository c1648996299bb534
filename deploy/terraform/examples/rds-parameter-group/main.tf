# Prepare an existing RDS PostgreSQL instance for Debezium: create the logical-replication
# parameter group, then attach it and reboot with the command in the output (the
# instance itself stays managed wherever it is managed today).

provider "aws" {
  region = var.region
}

module "source" {
  source = "../../modules/source"

  name   = var.db_instance_identifier
  family = var.family
  parameters = {
    "rds.logical_replication" = "1"
    "max_replication_slots"   = "10"
    "max_wal_senders"         = "10"
    "max_slot_wal_keep_size"  = "10240"
    "wal_sender_timeout"      = "0"
  }
}
