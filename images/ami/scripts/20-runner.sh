#!/usr/bin/env bash
# The job runner: ncaas-dev, the same version as the machine that baked, in its own venv.
# Installed from the shipped wheelhouse only (--no-index): no network, no ensurepip needed.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo --preserve-env bash "$0" "$@"
: "${NCAAS_PAYLOAD:?}" "${NCAAS_VENV:?}" "${NCAAS_VERSION:?}"

wheelhouse="$NCAAS_PAYLOAD/wheelhouse"
pip_wheel=$(ls "$wheelhouse"/pip-*.whl | head -1)
# A Python the wheelhouse has wheels for (payload.py: 3.11, 3.12): Ubuntu 24.04's python3 is
# 3.12; Amazon Linux 2023 has python3.11 (10-system.sh installs it) beside a 3.9 python3.
python=""
for candidate in python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null \
    && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || { echo "no Python 3.11 or 3.12 on this machine for the runner" >&2; exit 1; }
rm -rf "$NCAAS_VENV"
"$python" -m venv --without-pip "$NCAAS_VENV"
# A pip wheel runs as it is: python pip-X.whl/pip install ...
"$NCAAS_VENV/bin/python" "$pip_wheel/pip" install --quiet --no-index --no-cache-dir \
  --disable-pip-version-check --find-links "$wheelhouse" pip "ncaas-dev==$NCAAS_VERSION"
"$NCAAS_VENV/bin/python" -c "import ncaas_dev.runner"
echo "runner: ncaas-dev $NCAAS_VERSION in $NCAAS_VENV ($("$NCAAS_VENV/bin/python" --version))"
