#!/usr/bin/env bash
# Make sure a Docker daemon answers on /var/run/docker.sock (the Python Docker
# SDK and the docker CLI both use it). If none runs and we are root, start
# Debian's dockerd in the background (this machine has no systemd to do it).
set -euo pipefail

LOG="${NCAAS_DOCKERD_LOG:-/var/log/ncaas-dockerd.log}"
DATA_ROOT="${NCAAS_DOCKER_DATA_ROOT:-/var/lib/docker}"
WAIT="${NCAAS_DOCKERD_WAIT:-60}"

die() { echo "ensure-docker: $*" >&2; exit 1; }

docker_ok() { docker info >/dev/null 2>&1; }

# Already up (system service, Docker Desktop, rootless, or our earlier run): done.
if command -v docker >/dev/null && docker_ok; then exit 0; fi

[ "$(id -u)" = 0 ] || die "Docker is not running and starting it needs root: sudo $0 (or start Docker yourself)"
command -v dockerd >/dev/null || die "dockerd not installed: run scripts/ensure-system-packages.sh"
command -v docker >/dev/null || die "docker client not installed: run scripts/ensure-system-packages.sh"

# A dockerd that is starting or wedged: do not start a second one on the same data root.
if pgrep -x dockerd >/dev/null; then
  for _ in $(seq "$WAIT"); do docker_ok && { echo "docker: already-starting daemon is up"; exit 0; }; sleep 1; done
  die "a dockerd process exists but does not answer after ${WAIT}s (see $LOG)"
fi

# Pick a storage driver that works here. overlay2 needs kernel overlayfs and a
# backing filesystem that supports it (ext4/xfs yes; overlayfs-on-overlayfs,
# as inside many containers, no). Probe with a real mount instead of guessing;
# fall back to fuse-overlayfs if present, else vfs (slow, copies layers, but
# works everywhere). A storage-driver in daemon.json wins: passing the flag too
# would make dockerd refuse to start.
probe_overlay() {
  local d; mkdir -p "$DATA_ROOT"
  d=$(mktemp -d "$DATA_ROOT/.ncaas-overlay-probe.XXXXXX")
  mkdir -p "$d"/{l,u,w,m}; echo ok > "$d/l/f"
  local rc=1
  if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
    # also check a copy-up write works
    echo x >> "$d/m/f" 2>/dev/null && rc=0
    umount "$d/m" 2>/dev/null || true
  fi
  rm -rf "$d"; return $rc
}
args=(--data-root "$DATA_ROOT")
if ! grep -qs '"storage-driver"' /etc/docker/daemon.json; then
  if probe_overlay; then driver=overlay2
  elif command -v fuse-overlayfs >/dev/null && [ -e /dev/fuse ]; then driver=fuse-overlayfs
  else driver=vfs; fi
  args+=(--storage-driver "$driver")
fi

start_dockerd() {
  # setsid+nohup: the daemon must outlive this shell and ignore its hangup.
  echo "=== $(date -u +%FT%TZ) dockerd ${*}" >>"$LOG"
  setsid nohup dockerd "$@" >>"$LOG" 2>&1 < /dev/null &
  local pid=$!
  for _ in $(seq "$WAIT"); do
    docker_ok && return 0
    kill -0 "$pid" 2>/dev/null || return 1   # died: no point waiting
    sleep 1
  done
  return 1
}

if ! start_dockerd "${args[@]}"; then
  # Without working iptables (some VMs/containers lack nf_tables) dockerd exits at
  # startup; retry without it (containers still run, network:true analyses get
  # no NAT to the outside).
  if tail -n 30 "$LOG" | grep -qi iptables && ! pgrep -x dockerd >/dev/null; then
    start_dockerd "${args[@]}" --iptables=false \
      || die "dockerd did not come up within ${WAIT}s, even with --iptables=false (see $LOG)"
    echo "docker: WARNING iptables unavailable, started with --iptables=false" >&2
  else
    die "dockerd did not come up within ${WAIT}s (see $LOG)"
  fi
fi
echo "docker: started dockerd (storage driver $(docker info --format '{{.Driver}}' 2>/dev/null), log $LOG)"
