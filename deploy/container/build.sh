#!/bin/sh
# Builds a static clusterd beside this file, then the image FROM scratch.
# Offline: no base image is pulled.
#
#   deploy/container/build.sh [TAG]      # default tag: clusterd:latest
#   CONTAINER_TOOL=docker deploy/container/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
tag=${1:-clusterd:latest}
tool=${CONTAINER_TOOL:-podman}
version=$(git -C "$top" describe --always --dirty 2>/dev/null || echo dev)

(cd "$top" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" \
	-o "$here/clusterd" ./cmd/clusterd)
rm -rf "$here/rootfs"
mkdir -p "$here/rootfs/tmp"
chmod 1777 "$here/rootfs/tmp"
"$tool" build --file "$here/Containerfile" --tag "$tag" "$here"
