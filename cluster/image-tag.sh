#!/usr/bin/env sh
# Print the model server image's content tag, 0.1.0-<hash>: the hash covers the Dockerfile and
# every file the build context admits (.dockerignore), so the tag changes exactly when a rebuild
# could change the image, and `kind load` is never fooled by a reused tag.
set -eu
cd "$(dirname "$0")/.."
if command -v sha256sum >/dev/null 2>&1; then hash="sha256sum"; else hash="shasum -a 256"; fi
digest=$(
  { echo cluster/Dockerfile; echo pyproject.toml; echo README.md; echo cluster/requirements.lock; echo cluster/build-requirements.lock
    find servelab -type f ! -path '*/__pycache__/*' ! -name '*.pyc'; } \
  | LC_ALL=C sort | xargs $hash | $hash | cut -c1-12
)
echo "0.1.0-$digest"
