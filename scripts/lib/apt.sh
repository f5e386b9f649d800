# Sourced by scripts/ensure-*.sh: install the Debian packages given, only those missing.
#   ensure_apt_packages NAME PKG...   NAME prefixes its messages (the calling script's name)
# Idempotent: returns at once when all are installed; otherwise needs root and says so.

ensure_apt_packages() {
  local name=$1; shift
  local missing=() p st log
  for p in "$@"; do
    # dpkg-query exits 0 for removed-but-configured packages too; check the status.
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  [ "$(id -u)" = 0 ] || { echo "$name: missing ${missing[*]}; run as root: sudo $0" >&2; exit 1; }

  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp "/tmp/$name.XXXXXX.log")
  # Wait for another apt/dpkg run instead of failing on the lock; keep changed config files.
  local aptopts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # Refresh the index only if it is absent or older than a day (keeps reruns quick).
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get "${aptopts[@]}" update >"$log" 2>&1 \
      || { echo "$name: apt-get update failed (see $log)" >&2; exit 1; }
  fi
  # --no-install-recommends: docker.io would otherwise pull in e.g. git and apparmor extras.
  apt-get "${aptopts[@]}" install --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
    || { echo "$name: apt-get install ${missing[*]} failed (see $log)" >&2; exit 1; }
  rm -f "$log"
  echo "$name: installed ${missing[*]}"
}
