#!/usr/bin/env bash
# Memory per idle keep-alive connection: the servers' total RSS (master and
# workers) before and after N connections have each made one request and
# then sit idle.
#
#   deploy/bench/idle.sh [N]
#
# Uses nginx and node when installed. Servers listen on 127.0.0.1 and are
# stopped by pid when the script ends.
set -euo pipefail
n=${1:-10000}
workers=${WORKERS:-2}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true

# rss PID: kB of PID and its children.
rss() {
	local total=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
	done
	echo "$total"
}
waitup() { for i in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

measure() {
	local name=$1 pid=$2 addr=$3
	waitup "http://$addr/"
	sleep 0.5
	local before after
	before=$(rss "$pid")
	coproc HOLD { "$tmp/idleconns" -addr "$addr" -n "$n"; }
	read -r _ _ <&"${HOLD[0]}"
	sleep 1
	after=$(rss "$pid")
	exec {HOLD[1]}>&-
	wait "$HOLD_PID" || true
	printf '%-13s %8d kB before %8d kB with %d idle connections: %6.0f bytes each\n' \
		"$name" "$before" "$after" "$n" "$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN {print (a-b)*1024/n}')"
}

go build -o "$tmp/idleconns" "$here/idleconns.go"
go build -o "$tmp/clusterd" "$root/cmd/clusterd"
"$tmp/clusterd" --listen 127.0.0.1:8181 --workers "$workers" --idle-timeout 60s --control "$tmp/ctl.sock" --log-level warn &
pids+=($!)
measure clusterd $! 127.0.0.1:8181

if command -v nginx >/dev/null; then
	mkdir -p "$tmp/nginx"
	sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|8184|" -e "s|@DIR@|$tmp/nginx|g" "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
	sed -i 's/worker_connections 4096/worker_connections 16384/' "$tmp/nginx/nginx.conf"
	nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	pids+=($!)
	measure nginx $! 127.0.0.1:8184
fi
if command -v node >/dev/null; then
	PORT=8182 WORKERS=$workers node "$here/node-cluster.js" &
	pids+=($!)
	measure node-cluster $! 127.0.0.1:8182
fi
