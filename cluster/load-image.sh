#!/usr/bin/env sh
# Usage: sh cluster/load-image.sh CLUSTER IMAGE...
# Copy images from Docker into the kind cluster's node. `kind load docker-image` is kind's way;
# with Docker's containerd image store it can fail with "content digest ... not found" (kind
# issue 3795), and then this falls back to the workaround kind documents: save only this
# machine's platform to an archive and load that.
set -eu
cluster="$1"
shift
if kind load docker-image "$@" --name "$cluster"; then
  exit 0
fi
echo "kind load docker-image failed; retrying with a single-platform archive" >&2
arch=$(docker version --format '{{.Server.Arch}}')
archive=$(mktemp "${TMPDIR:-/tmp}/servelab-image.XXXXXX")
trap 'rm -f "$archive"' EXIT
docker image save --platform "linux/$arch" --output "$archive" "$@"
kind load image-archive "$archive" --name "$cluster"
