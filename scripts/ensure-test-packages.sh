#!/usr/bin/env bash
# Install what only `make test` needs, only if missing (`make demo` does not run this):
#   chromium   the browser the web client's tests drive through Playwright
#              (Debian's package; `playwright install` downloads browsers and cannot work here)
set -euo pipefail

PKGS=(chromium)

source "$(dirname "$0")/lib/apt.sh"
ensure_apt_packages ensure-test-packages "${PKGS[@]}"
