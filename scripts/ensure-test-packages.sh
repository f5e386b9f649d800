#!/usr/bin/env bash
# Install what only `make test` needs, only if missing (`make demo` does not run this):
#   chromium   the browser the web client's tests drive through Playwright
#              (Debian's package; `playwright install` downloads browsers and cannot work here)
set -euo pipefail

PKGS=(chromium)

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || { echo "ensure-test-packages: missing ${missing[*]}; run as root: sudo $0" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/ensure-test-packages.XXXXXX.log)
aptopts=(-q -y -o DPkg::Lock::Timeout=300)
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  apt-get "${aptopts[@]}" update >"$log" 2>&1 || { echo "apt-get update failed (see $log)" >&2; exit 1; }
fi
apt-get "${aptopts[@]}" install --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
  || { echo "apt-get install ${missing[*]} failed (see $log)" >&2; exit 1; }
rm -f "$log"
echo "installed: ${missing[*]}"
