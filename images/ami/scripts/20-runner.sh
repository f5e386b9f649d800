#!/usr/bin/env bash
# The job runner: ncaas-dev, the same version as the machine that baked, in its own venv.
# Installed from the shipped wheelhouse only (--no-index): no network, no ensurepip needed.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo --preserve-env bash "$0" "$@"
: "${NCAAS_PAYLOAD:?}" "${NCAAS_VENV:?}" "${NCAAS_VERSION:?}"

wheelhouse="$NCAAS_PAYLOAD/wheelhouse"
pip_wheel=$(ls "$wheelhouse"/pip-*.whl | head -1)
rm -rf "$NCAAS_VENV"
python3 -m venv --without-pip "$NCAAS_VENV"
# A pip wheel runs as it is: python pip-X.whl/pip install ...
"$NCAAS_VENV/bin/python" "$pip_wheel/pip" install --quiet --no-index --no-cache-dir \
  --disable-pip-version-check --find-links "$wheelhouse" pip "ncaas-dev==$NCAAS_VERSION"
"$NCAAS_VENV/bin/python" -c "import ncaas_dev.runner"
echo "runner: ncaas-dev $NCAAS_VERSION in $NCAAS_VENV ($("$NCAAS_VENV/bin/python" --version))"
