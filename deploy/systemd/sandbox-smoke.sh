#!/bin/sh
# Runs clusterd in an approximation of clusterd.service's sandbox, for a
# machine where systemd is not PID 1 (a build container): read-only /,
# private /tmp, the RuntimeDirectory on a tmpfs, user 65534 with only
# CAP_NET_BIND_SERVICE and no new privileges, NOTIFY_SOCKET and
# WATCHDOG_USEC. Binds 127.0.0.1:PORT (default 81, below 1024 on purpose),
# curls it, reloads through the control socket, stops, and prints what the
# "service manager" heard. Needs root, unshare, setpriv, python3 and curl.
#
#   CGO_ENABLED=0 go build -o /tmp/clusterd ./cmd/clusterd
#   sudo deploy/systemd/sandbox-smoke.sh /tmp/clusterd
set -eu
bin=${1:?usage: sandbox-smoke.sh /path/to/clusterd [port]}
port=${2:-81}
if [ "${SANDBOX_INNER:-}" != 1 ]; then
	exec env SANDBOX_INNER=1 unshare --mount --propagation private "$0" "$@"
fi
run=/mnt # a tmpfs over /mnt, in this private mount namespace only
mount -t tmpfs -o mode=0755 tmpfs "$run"
install -d -m 0700 -o 65534 -g 65534 "$run/clusterd"
cp "$bin" "$run/clusterd.bin" && chmod 0755 "$run/clusterd.bin"
mount -o remount,bind,ro / # ProtectSystem=strict (the tmpfs stays writable)
mount -t tmpfs tmpfs /tmp  # PrivateTmp=yes
python3 -c '
import socket, os, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.settimeout(5)
try:
    while True:
        print("notify:", s.recv(4096).decode().replace("\n", " | "), flush=True)
except OSError:
    pass
' "$run/notify" &
heard=$!
for _ in $(seq 50); do [ -S "$run/notify" ] && break; sleep 0.1; done
RUNTIME_DIRECTORY=$run/clusterd NOTIFY_SOCKET=$run/notify WATCHDOG_USEC=2000000 \
	setpriv --reuid 65534 --regid 65534 --clear-groups --no-new-privs \
	--inh-caps -all,+net_bind_service --ambient-caps -all,+net_bind_service \
	--bounding-set -all,+net_bind_service \
	"$run/clusterd.bin" --listen "127.0.0.1:$port" --workers 2 &
master=$!
trap 'kill -TERM "$master" 2>/dev/null || true' EXIT
sleep 1.5
curl -s -o /dev/null -w "curl 127.0.0.1:$port -> %{http_code}\n" "http://127.0.0.1:$port/"
ls -l "$run/clusterd"
# ctl runs as the service's user: the socket is that user's, and a client
# trusts only a socket of its own user or root.
setpriv --reuid 65534 --regid 65534 --clear-groups \
	"$run/clusterd.bin" ctl --control "$run/clusterd/master-$master.sock" reload
kill -TERM "$master"
wait "$master" && echo "master exit 0"
trap - EXIT
wait "$heard" || true
