# The ncaas analysis AMI: Ubuntu (or a GPU base) + Docker + the analysis image already loaded +
# the ncaas-dev job runner in /opt/ncaas/venv. Rendered by `ncaas-dev bake`, which writes the
# variables (vars.pkrvars.json) from the blueprint and picks one source with -only:
#   amazon-ebs.local  LocalStack's EC2: registers the AMI, runs nothing (communicator "none")
#   docker.standin    a container standing in for the instance: runs the same provisioning
#   amazon-ebs.cloud  real AWS over SSH: the provisioning runs on the instance
# See docs/baking.md.

variable "analysis" {
  type = string
}

variable "region" {
  type = string
}

variable "instance_type" {
  type = string
}

variable "volume_gb" {
  type = number
}

variable "root_device_name" {
  type    = string
  default = "/dev/sda1"
}

# amazon-ebs.local: LocalStack's EC2 endpoint.
variable "ec2_endpoint" {
  type    = string
  default = ""
}

# amazon-ebs.local: any AMI id LocalStack knows (nothing boots from it there).
variable "local_source_ami" {
  type    = string
  default = "ami-00000000"
}

# amazon-ebs.cloud: an id (with an empty filter), or the newest image matching the filter
# from these owners (with source_ami = "").
variable "source_ami" {
  type    = string
  default = ""
}

variable "source_ami_filters" {
  type = map(string)
}

variable "source_ami_owners" {
  type = list(string)
}

# amazon-ebs.cloud: where the build instance runs ("" / []: the default VPC, a temporary
# security group that lets Packer's SSH in). A private subnet needs a way to Packer's SSH.
variable "subnet_id" {
  type    = string
  default = ""
}

variable "security_group_ids" {
  type    = list(string)
  default = []
}

variable "ssh_username" {
  type    = string
  default = "ubuntu"
}

# docker.standin: the local base image, never pulled.
variable "standin_image" {
  type    = string
  default = "ncaas/base:bookworm"
}

variable "ami_name" {
  type = string
}

variable "tags" {
  type = map(string)
}

# What the provisioning scripts install and check.
variable "payload_dir" {
  type = string
}

variable "verify_report" {
  type = string
}

variable "provision_env" {
  type = list(string)
}

variable "manifest" {
  type = string
}

source "amazon-ebs" "local" {
  region                     = var.region
  custom_endpoint_ec2        = var.ec2_endpoint
  skip_credential_validation = true
  skip_metadata_api_check    = true
  skip_region_validation     = true
  source_ami                 = var.local_source_ami
  instance_type              = var.instance_type
  ami_name                   = var.ami_name
  ami_description            = "ncaas analysis ${var.analysis}"
  communicator               = "none"
  tags                       = var.tags
  snapshot_tags              = var.tags
  run_tags                   = var.tags
  launch_block_device_mappings {
    device_name           = var.root_device_name
    volume_size           = var.volume_gb
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
  }
}

source "amazon-ebs" "cloud" {
  region     = var.region
  source_ami = var.source_ami
  source_ami_filter {
    filters     = var.source_ami_filters
    owners      = var.source_ami_owners
    most_recent = true
  }
  instance_type      = var.instance_type
  subnet_id          = var.subnet_id
  security_group_ids = var.security_group_ids
  ami_name           = var.ami_name
  ami_description    = "ncaas analysis ${var.analysis}"
  communicator       = "ssh"
  ssh_username       = var.ssh_username
  ssh_timeout        = "10m"
  tags               = var.tags
  snapshot_tags      = var.tags
  run_tags           = var.tags
  launch_block_device_mappings {
    device_name           = var.root_device_name
    volume_size           = var.volume_gb
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
  }
}

# No network: the proof that the runner installs from the shipped wheels alone.
source "docker" "standin" {
  image       = var.standin_image
  pull        = false
  discard     = true
  run_command = ["-d", "-i", "-t", "--network=none", "--entrypoint=/bin/sh", "--", "{{.Image}}"]
}

build {
  sources = ["source.amazon-ebs.local", "source.amazon-ebs.cloud", "source.docker.standin"]

  # The payload: the image archive (docker save), a wheelhouse holding ncaas-dev and its
  # dependencies (so the install needs no network), and baked.json.
  provisioner "file" {
    only        = ["amazon-ebs.cloud", "docker.standin"]
    source      = "${var.payload_dir}/"
    destination = "/tmp/ncaas-payload"
  }

  provisioner "shell" {
    only             = ["amazon-ebs.cloud", "docker.standin"]
    environment_vars = var.provision_env
    scripts = [
      "${path.root}/scripts/10-system.sh",
      "${path.root}/scripts/20-runner.sh",
      "${path.root}/scripts/30-image.sh",
      "${path.root}/scripts/40-manifest.sh",
      "${path.root}/scripts/90-verify.sh",
    ]
  }

  # What the instance (or its stand-in) found after provisioning; `bake` checks it.
  provisioner "file" {
    only        = ["amazon-ebs.cloud", "docker.standin"]
    direction   = "download"
    source      = "/tmp/ncaas-verify.json"
    destination = var.verify_report
  }

  # The payload's leftovers (the image archive is already gone) stay out of the AMI.
  provisioner "shell" {
    only   = ["amazon-ebs.cloud"]
    inline = ["sudo rm -rf /tmp/ncaas-payload /tmp/ncaas-verify.json /tmp/ncaas-system-step"]
  }

  post-processor "manifest" {
    output     = var.manifest
    strip_path = true
  }
}
