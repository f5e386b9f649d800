#!/usr/bin/env bash
# Install the Debian packages the local stack needs, only those missing.
#   docker.io      dockerd/containerd/runc: runs analysis containers (no registry
#                  needed; images are built locally, the base via debootstrap)
#   debootstrap    builds the offline base image (images/base/build.sh)
#   packer         `ncaas-dev bake`
#   docker-compose `ncaas-dev up --containers` (docker-compose.yml; images built here)
#   python3-venv   LocalStack runs in its own venv (localstack/setup.sh)
#   curl, ca-certificates  health checks / HTTPS to PyPI
set -euo pipefail

PKGS=(docker.io debootstrap packer docker-compose python3-venv curl ca-certificates)

source "$(dirname "$0")/lib/apt.sh"
ensure_apt_packages ensure-system-packages "${PKGS[@]}"
