#!/bin/sh
# Runs the image's files the way a container runtime would, for hosts
# where `podman run` cannot start containers: the image's root as /, the
# master as PID 1 of a new PID namespace, user 65534, a fresh /tmp. Checks
# that it serves, that `ctl status` reports master pid 1, and that SIGTERM
# stops it with exit status 0. Needs root, podman, unshare, chroot, curl.
#
#   deploy/container/build.sh && sudo deploy/container/smoke.sh [IMAGE] [PORT]
set -eu
image=${1:-clusterd:latest}
port=${2:-18089}
if [ "${SMOKE_INNER:-}" = 1 ]; then # inside the new namespaces
	root=$3
	mount -t proc proc "$root/proc"
	mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
	touch "$root/dev/null" && mount --bind /dev/null "$root/dev/null"
	exec chroot --userspec=65534:65534 "$root" /clusterd --listen "127.0.0.1:$port" --workers 2
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
files=$(podman image mount "$image")
cp -a "$files/." "$root/"
podman image unmount "$image" >/dev/null
mkdir -p "$root/proc" "$root/dev"
SMOKE_INNER=1 unshare --pid --fork --mount --propagation private "$0" "$image" "$port" "$root" &
outer=$!
sleep 1.5
master=$(pgrep -P "$outer")
curl -sS "http://127.0.0.1:$port/worker"; echo
nsenter --target "$master" --mount --pid \
	chroot --userspec=65534:65534 "$root" /clusterd ctl status
kill -TERM "$master"
wait "$outer" && echo "master (PID 1) exited 0 on SIGTERM"
