#!/usr/bin/env bash
# Written last: baked.json in place means every step before it succeeded.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo --preserve-env bash "$0" "$@"
: "${NCAAS_PAYLOAD:?}" "${NCAAS_BAKE_MANIFEST:?}"
install -D --mode 0644 "$NCAAS_PAYLOAD/baked.json" "$NCAAS_BAKE_MANIFEST"
echo "manifest: $NCAAS_BAKE_MANIFEST"
