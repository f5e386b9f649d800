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

die() { echo "ensure-system-packages: $*" >&2; exit 1; }

missing=()
for p in "${PKGS[@]}"; do
  # dpkg-query exits 0 for removed-but-configured packages too; check the status.
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run as root: sudo $0"

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/ensure-system-packages.XXXXXX.log)
# Wait for another apt/dpkg run instead of failing on the lock.
aptopts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
# Refresh the index only if it is absent or older than a day (keeps reruns quick).
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  apt-get "${aptopts[@]}" update >"$log" 2>&1 || die "apt-get update failed (see $log)"
fi
# --no-install-recommends: docker.io would otherwise pull in e.g. git and apparmor extras.
apt-get "${aptopts[@]}" install --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
  || die "apt-get install ${missing[*]} failed (see $log)"
rm -f "$log"
echo "installed: ${missing[*]}"
