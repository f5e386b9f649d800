#!/usr/bin/env bash
# Create localstack/.venv with LocalStack's runtime (see requirements.txt for
# why each pin). Idempotent: a stamp holding the requirements' hash makes a
# rerun a no-op; a changed requirements.txt reinstalls.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="${NCAAS_LOCALSTACK_VENV:-$here/.venv}"
req="$here/requirements.txt"
py="${NCAAS_LOCALSTACK_PYTHON:-python3.11}"
die() { echo "localstack/setup.sh: $*" >&2; exit 1; }

want=$(sha256sum "$req" | cut -c1-16)
stamp="$venv/.ncaas-requirements"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi

command -v "$py" >/dev/null || die "$py not found (LocalStack 4.13 needs Python 3.10-3.12; set NCAAS_LOCALSTACK_PYTHON)"
log=$(mktemp /tmp/localstack-setup.XXXXXX.log)
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv" >"$log" 2>&1 || die "could not create $venv (python3-venv missing? see $log)"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >>"$log" 2>&1 \
  || die "pip install failed (see $log)"
# Fail here, not at first request, if the runtime cannot load.
"$venv/bin/python" -c "import localstack.aws.components, localstack.services.stores, OpenSSL, service_identity" >>"$log" 2>&1 \
  || die "LocalStack runtime does not import (see $log)"
echo "$want" > "$stamp"; rm -f "$log"
echo "LocalStack $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("localstack-core"))') ready in $venv"
