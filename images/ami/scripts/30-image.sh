#!/usr/bin/env bash
# The analysis image: checked against the digest bake recorded, then loaded into Docker under
# its tag. The stand-in has no Docker daemon: it checks the archive holds that very image.
# A Batch analysis's payload also holds runner.tar, the image its jobs run the runner in
# (ncaas/runner:baked, which the job definition names): loaded the same way.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo --preserve-env bash "$0" "$@"
: "${NCAAS_PAYLOAD:?}" "${NCAAS_IMAGE_ID:?}" "${NCAAS_IMAGE_TAG:?}" "${NCAAS_ARCHIVE_SHA256:?}"

archive="$NCAAS_PAYLOAD/image.tar"
echo "$NCAAS_ARCHIVE_SHA256  $archive" | sha256sum --check --quiet -
if grep -q '^skipped' /tmp/ncaas-system-step; then
  echo "image: no Docker daemon in the stand-in; 90-verify.sh checks the archive, which stays"
else
  docker load --input "$archive"
  loaded=$(docker image inspect --format '{{.Id}}' "$NCAAS_IMAGE_TAG")
  if [ "$loaded" != "$NCAAS_IMAGE_ID" ]; then
    echo "loaded $NCAAS_IMAGE_TAG is $loaded, expected $NCAAS_IMAGE_ID" >&2
    exit 1
  fi
  rm -f "$archive"  # loaded: the archive would only double the AMI's size
  echo "image: $NCAAS_IMAGE_TAG loaded ($loaded)"
fi

runner="$NCAAS_PAYLOAD/runner.tar"
if [ -f "$runner" ]; then
  if grep -q '^skipped' /tmp/ncaas-system-step; then
    echo "runner image: no Docker daemon in the stand-in; 90-verify.sh checks the archive"
  else
    docker load --input "$runner"
    rm -f "$runner"
    echo "runner image: ncaas/runner:baked loaded ($(docker image inspect --format '{{.Id}}' ncaas/runner:baked))"
  fi
fi
