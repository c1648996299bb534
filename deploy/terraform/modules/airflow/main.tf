# Airflow on EC2 (the reference's orchestration): one host, reached through SSM Session
# Manager (no inbound port), running the DAGs rendered for airflow.target: aws.

data "aws_ssm_parameter" "ami" {
  name = var.ami_ssm_parameter
}

resource "aws_instance" "airflow" {
  ami                  = data.aws_ssm_parameter.ami.value
  instance_type        = var.instance_type
  subnet_id            = var.subnet_id
  iam_instance_profile = module.role.instance_profile_name
  ebs_optimized        = true
  monitoring           = true

  vpc_security_group_ids = [var.security_group_id]

  metadata_options {
    http_tokens   = "required"
    http_endpoint = "enabled"
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 50
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }

  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/templates/user-data.sh.tftpl", {
    bucket           = var.artifacts_bucket
    package_key      = var.package_key
    config_key       = var.config_key
    requirements_key = var.requirements_key
  })

  tags = merge(var.tags, { Name = "${var.name}-airflow" })
}

# Start and watch exactly the pipeline's Glue jobs; read the artifacts.
data "aws_iam_policy_document" "airflow" {
  statement {
    sid       = "GlueJobs"
    actions   = ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:GetJob", "glue:BatchStopJobRun", "glue:UpdateJob"]
    resources = var.glue_job_arns
  }
  statement {
    # GlueJobOperator resolves iam_role_name and passes the role when it updates a job.
    sid       = "GlueRole"
    actions   = ["iam:GetRole", "iam:PassRole"]
    resources = [var.glue_role_arn]
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject"]
    resources = ["${var.artifacts_bucket_arn}/artifacts/*", "${var.artifacts_bucket_arn}/${var.config_key}"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

module "role" {
  source = "../service-role"

  name                = "${var.name}-airflow"
  service             = "ec2.amazonaws.com"
  policy_json         = data.aws_iam_policy_document.airflow.json
  managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
  instance_profile    = true
  tags                = var.tags
}
