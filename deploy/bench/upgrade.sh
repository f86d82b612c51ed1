#!/usr/bin/env bash
# Requests lost to master binary upgrades: wrk keep-alive load while each
# server's master is replaced twice by a new binary, in its own way:
#   clusterd  install the other build (copy + rename), clusterd ctl upgrade;
#             builds A and B differ in their version (-X main.version)
#   nginx     kill -USR2 master; kill -WINCH old master; kill -QUIT old master
#             (nginx's documented binary upgrade; same binary both times)
#
#   deploy/bench/upgrade.sh [CONNECTIONS] [SECONDS]
#
# Needs wrk; uses nginx when installed. Servers listen on 127.0.0.1 and are
# stopped by pid when the script ends.
set -euo pipefail
conns=${1:-64} secs=${2:-10}
. "$(dirname "$0")/lib.sh"
need_wrk

# measure NAME URL UPGRADE-COMMAND: wrk for $secs, upgrading at 1/3 and 2/3.
measure() {
	wrk_twice "$@"
	losses "$1" 9
	grep 'Socket errors' "$tmp/$1.wrk" | sed 's/^ */          /' || true
}

# clusterd_upgrade: install the build not running now, then ctl upgrade.
clusterd_upgrade() {
	local next=B
	[ "$(cat "$tmp/running")" = B ] && next=A
	cp "$tmp/clusterd-$next" "$tmp/clusterd.new" && mv "$tmp/clusterd.new" "$tmp/clusterd"
	"$tmp/clusterd" ctl --control "$tmp/ctl.sock" upgrade >/dev/null
	echo "$next" >"$tmp/running"
	pids+=("$(cat "$tmp/clusterd.pid")")
	echo "          master $(cat "$tmp/clusterd.pid"): $("/proc/$(cat "$tmp/clusterd.pid")/exe" version)"
}

# nginx_upgrade: USR2 starts a new master (the old pid file becomes
# nginx.pid.oldbin), WINCH stops the old workers gracefully, QUIT the old master.
nginx_upgrade() {
	local old new
	old=$(cat "$tmp/nginx/nginx.pid")
	kill -USR2 "$old"
	for _ in $(seq 100); do
		[ -s "$tmp/nginx/nginx.pid.oldbin" ] && [ -s "$tmp/nginx/nginx.pid" ] && break
		sleep 0.05
	done
	new=$(cat "$tmp/nginx/nginx.pid")
	pids+=("$new")
	sleep 0.5 # the new master's workers start
	kill -WINCH "$old"
	sleep 1
	kill -QUIT "$old"
	echo "          master $new (was $old)"
}

echo "wrk -t2 -c$conns -d${secs}s, two master binary upgrades each, $workers workers"
for v in A B; do go build -ldflags "-X main.version=$v" -o "$tmp/clusterd-$v" "$root/cmd/clusterd"; done
cp "$tmp/clusterd-A" "$tmp/clusterd" && echo A >"$tmp/running"
start_clusterd 18185 --pid-file "$tmp/clusterd.pid"
measure clusterd http://127.0.0.1:18185/ clusterd_upgrade
# nginx_daemon PORT: nginx as its binary upgrade needs it: daemonized (a new
# master is refused while its parent is the one it started with) and
# started by absolute path (the new master is executed by that name).
nginx_daemon() {
	command -v nginx >/dev/null || return 1
	mkdir -p "$tmp/nginx"
	sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|$1|" -e "s|@DIR@|$tmp/nginx|g" \
		-e "s|daemon off;|daemon on;|" "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
	"$(command -v nginx)" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log"
	pids+=("$(cat "$tmp/nginx/nginx.pid")")
	waitup "http://127.0.0.1:$1/"
}

if nginx_daemon 18186; then measure nginx http://127.0.0.1:18186/ nginx_upgrade; fi
