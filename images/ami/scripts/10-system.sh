#!/usr/bin/env bash
# Docker (and, for a GPU analysis, the NVIDIA driver + container toolkit) on the instance.
# Skipped where no init system could run a daemon: the docker stand-in has no systemd, and it
# has no route to the package mirrors' HTTPS either. What the skip leaves unproven is listed in
# docs/baking.md.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo --preserve-env bash "$0" "$@"

status=/tmp/ncaas-system-step
systemd_dir="${NCAAS_SYSTEMD_DIR:-/run/systemd/system}"  # overridable for the tests only
daemon_json="${NCAAS_DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
if [ "${PACKER_BUILDER_TYPE:-}" = docker ] || [ ! -d "$systemd_dir" ]; then
  echo "skipped: no systemd here (stand-in container); Docker/NVIDIA are not installed" | tee "$status"
  exit 0
fi

install_with_apt() {  # Ubuntu (the default base) and Debian
  export DEBIAN_FRONTEND=noninteractive
  # Unattended upgrades would restart Docker (and so the analysis) on a running instance: the
  # baked AMI never runs them. An instance lives for one dataset; the next bake takes updates.
  apt_units="apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service unattended-upgrades.service"
  # shellcheck disable=SC2086
  systemctl stop $apt_units >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  systemctl mask $apt_units
  # cloud-init may still be running apt on first boot; wait for it instead of fighting the lock.
  cloud-init status --wait >/dev/null 2>&1 || true
  apt_get() { apt-get -q -y -o DPkg::Lock::Timeout=300 "$@"; }
  # DPkg::Lock::Timeout does not cover the lists lock that `apt-get update` takes: retry it.
  for attempt in 1 2 3 4 5 6; do
    apt_get update && break
    [ "$attempt" = 6 ] && { echo "apt-get update failed 6 times" >&2; exit 1; }
    sleep "${NCAAS_APT_RETRY_SLEEP:-10}"
  done
  apt_get install --no-install-recommends ca-certificates curl gnupg python3 python3-venv

  if ! command -v docker >/dev/null; then
    apt_get install --no-install-recommends docker.io
  fi

  if [ "${NCAAS_GPU:-false}" = true ]; then
    # The GPU base AMI (Deep Learning Base OSS Nvidia Driver) ships the driver and toolkit;
    # a plain Ubuntu base gets them here.
    if ! command -v nvidia-smi >/dev/null; then
      apt_get install ubuntu-drivers-common
      ubuntu-drivers install --gpgpu
    fi
    if ! command -v nvidia-ctk >/dev/null; then
      curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
        | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
      curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
        | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#' \
        > /etc/apt/sources.list.d/nvidia-container-toolkit.list
      apt_get update
      apt_get install nvidia-container-toolkit
    fi
  fi
}

install_with_dnf() {  # Amazon Linux 2023: the ECS-optimized AMI a Batch analysis bakes from
  # No unattended upgrades to stop; its metadata timer would only compete with dnf below.
  systemctl mask dnf-makecache.timer >/dev/null 2>&1 || true
  # The runner needs Python >= 3.11; Amazon Linux 2023's python3 is 3.9 (20-runner.sh picks it).
  dnf -q -y install python3.11
  command -v docker >/dev/null || dnf -q -y install docker
  if [ "${NCAAS_GPU:-false}" = true ] && ! command -v nvidia-ctk >/dev/null; then
    echo "a GPU analysis on Amazon Linux needs the ECS GPU-optimized base, which carries the" \
      "NVIDIA driver and container toolkit: cloud.source_ami: amazon:al2023-ami-ecs-gpu-hvm-*-x86_64" >&2
    exit 1
  fi
}

if command -v dnf >/dev/null; then install_with_dnf; else install_with_apt; fi
systemctl enable --now docker
if [ "${NCAAS_GPU:-false}" = true ]; then
  nvidia-ctk runtime configure --runtime=docker  # docker restarts below
fi
# live-restore: containers keep running if dockerd restarts (an upgrade, a crash).
python3 - "$daemon_json" <<'PY'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
config = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
config["live-restore"] = True
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(config, indent=2) + "\n")
PY
systemctl restart docker
echo "installed: docker $(docker version --format '{{.Server.Version}}')$([ "${NCAAS_GPU:-false}" = true ] && echo ' + nvidia container toolkit')" | tee "$status"
