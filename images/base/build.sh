#!/usr/bin/env bash
# Build the offline analysis base image ncaas/base:bookworm.
# No registry is reachable, so we cannot `FROM debian`; instead debootstrap a
# minimal Debian rootfs from the apt mirror and `docker import` it.
# Idempotent: the image carries a label with a hash of everything that shapes
# the rootfs; if an image with that hash exists we do nothing.
set -euo pipefail

IMAGE="${NCAAS_BASE_IMAGE:-ncaas/base:bookworm}"
SUITE="${NCAAS_BASE_SUITE:-bookworm}"
PACKAGES="${NCAAS_BASE_PACKAGES:-python3,python3-numpy,python3-matplotlib,ca-certificates}"
# Debootstrap caches .debs here so a rebuild (changed package list) is quicker.
CACHE_DIR="${NCAAS_BASE_CACHE:-/var/cache/ncaas/debootstrap}"

die() { echo "images/base/build.sh: $*" >&2; exit 1; }

# Use the same mirror the machine's apt uses (works behind mirrors/proxies);
# skip the security suite, fall back to deb.debian.org.
mirror_from_apt() {
  local m=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR="${NCAAS_DEBIAN_MIRROR:-$(mirror_from_apt)}"

# The mirror is deliberately not in the hash: the same package list from
# another mirror is the same image.
HASH=$(printf 'v1|%s|minbase|%s\n' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-16)

command -v docker >/dev/null || die "docker client not found"
docker info >/dev/null 2>&1 || die "docker daemon not answering (run scripts/ensure-docker.sh)"

have=$(docker image inspect "$IMAGE" --format '{{ index .Config.Labels "org.ncaas.base.hash" }}' 2>/dev/null || true)
if [ "$have" = "$HASH" ]; then
  echo "$IMAGE is up to date (hash $HASH)"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root (run with sudo)"
command -v debootstrap >/dev/null || die "debootstrap missing (run scripts/ensure-system-packages.sh)"

ROOTFS=$(mktemp -d /var/tmp/ncaas-base-rootfs.XXXXXX)
# Always remove the rootfs, even on failure (it is ~400 MB).
trap 'rm -rf --one-file-system "$ROOTFS"' EXIT
mkdir -p "$CACHE_DIR"

echo "building $IMAGE from $MIRROR ($SUITE, hash $HASH) ..."
start=$(date +%s)
LOG="$ROOTFS.log"
if ! debootstrap --variant=minbase --cache-dir="$CACHE_DIR" --include="$PACKAGES" \
      "$SUITE" "$ROOTFS" "$MIRROR" >"$LOG" 2>&1; then
  tail -n 20 "$LOG" >&2
  die "debootstrap failed (full log: $LOG)"
fi
rm -f "$LOG"

# Trim what a container never needs: apt lists and cached .debs.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb \
       "$ROOTFS"/var/cache/apt/*.bin
# debootstrap copies the host's resolv.conf/hostname; docker manages those.
: > "$ROOTFS/etc/resolv.conf"; : > "$ROOTFS/etc/hostname"

# MPLBACKEND=Agg: there is no display in an analysis container.
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV MPLBACKEND=Agg' \
  --change "LABEL org.ncaas.base.hash=$HASH" \
  --change "LABEL org.ncaas.base.packages=$PACKAGES" \
  --change "LABEL org.ncaas.base.suite=$SUITE" \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE" >/dev/null || die "docker import failed"

echo "built $IMAGE in $(( $(date +%s) - start ))s (hash $HASH)"
