#!/usr/bin/env bash
# Requests lost to restarts: wrk keep-alive load while each server is
# restarted twice in its own zero-downtime way, interleaved in one run:
#   clusterd      SIGHUP, then clusterd ctl reload (rolling restart)
#   nginx         nginx -s reload, twice
#   node-cluster  SIGHUP, twice (fork, wait for 'listening', disconnect the old worker)
#
#   deploy/bench/roll.sh [CONNECTIONS] [SECONDS]
#
# Needs wrk; uses nginx and node when installed. Servers listen on
# 127.0.0.1 and are stopped by pid when the script ends.
set -euo pipefail
conns=${1:-64} secs=${2:-10}
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
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }

waitup() { for i in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# measure NAME URL RESTART-COMMAND: wrk for $secs, restarting at 1/3 and 2/3.
measure() {
	local name=$1 url=$2 restart=$3
	wrk -t2 -c"$conns" -d"${secs}s" "$url" >"$tmp/$name.wrk" &
	local w=$!
	sleep "$(awk -v s="$secs" 'BEGIN {print s/3}')"
	eval "$restart"
	sleep "$(awk -v s="$secs" 'BEGIN {print s/3}')"
	eval "$restart"
	wait "$w"
	local reqs errs non2xx
	reqs=$(awk '/requests in/ {print $1}' "$tmp/$name.wrk")
	errs=$(awk '/Socket errors/ {gsub(",", ""); s=0; for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; print s}' "$tmp/$name.wrk")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/$name.wrk")
	printf '%-13s %10s requests %6s socket errors %6s non-2xx\n' "$name" "$reqs" "${errs:-0}" "${non2xx:-0}"
}

go build -o "$tmp/clusterd" "$root/cmd/clusterd"
"$tmp/clusterd" --listen 127.0.0.1:8181 --workers "$workers" --control "$tmp/ctl.sock" --log-level warn &
cpid=$!
pids+=($cpid)
waitup http://127.0.0.1:8181/
pidsof() { "$tmp/clusterd" ctl --control "$tmp/ctl.sock" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("generation", s["master"]["generation"], "pids", " ".join(str(w["pid"]) for w in s["workers"] if w["state"] == "ready"))'; }
echo "wrk -t2 -c$conns -d${secs}s, two restarts each, $workers workers"
before=$(pidsof)
measure clusterd http://127.0.0.1:8181/ \
	'if [ -z "${rolled:-}" ]; then kill -HUP $cpid; rolled=1; sleep 1; mid=$(pidsof); else "$tmp/clusterd" ctl --control "$tmp/ctl.sock" reload >/dev/null; fi'
echo "              workers: $before → $mid → $(pidsof)"

if command -v nginx >/dev/null; then
	mkdir -p "$tmp/nginx"
	sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|8184|" -e "s|@DIR@|$tmp/nginx|g" "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
	nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	pids+=($!)
	waitup http://127.0.0.1:8184/
	measure nginx http://127.0.0.1:8184/ 'nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -s reload'
fi
if command -v node >/dev/null; then
	PORT=8182 WORKERS=$workers node "$here/node-cluster.js" &
	npid=$!
	pids+=($npid)
	waitup http://127.0.0.1:8182/
	measure node-cluster http://127.0.0.1:8182/ 'kill -HUP $npid'
fi
