#!/usr/bin/env bash
# How evenly each server spreads requests over its worker processes: for
# every clusterd scheduling mode, nginx (shared socket, and reuseport) and
# Node cluster, wrk keep-alive load and then new-connection load
# (-H 'Connection: close'), one fresh server per measurement; prints each
# worker's request count, the busiest/idlest ratio and req/s, and for
# clusterd each worker's open connections half-way through.
#
#   deploy/bench/balance.sh [SECONDS] [CONNECTIONS]
#
# Needs wrk; uses nginx and node when installed. WORKERS sets the
# processes per server (default 4), MODES the clusterd modes (default
# "shared rr reuseport"), PEERS=0 leaves the peers out, PORT0 the port
# before the first one used (default 8190). Servers listen on 127.0.0.1 and are
# stopped by pid when the script ends.
set -euo pipefail
secs=${1:-5} conns=${2:-64}
WORKERS=${WORKERS:-4}
. "$(dirname "$0")/lib.sh"
need_wrk
port=${PORT0:-8190}

# spread COUNTS…: "busiest/idlest" of the per-worker counts (inf if one is
# 0; a worker missing from the counts, as from a peer's log, counts as 0).
spread() {
	tr ' ' '\n' | grep -v '^$' | sort -n | awk -v w="$workers" '
		NR == 1 {min = $1} {max = $1; n++; s = s " " $1}
		END {
			for (; n < w; n++) {s = " 0" s; min = 0}
			printf "%-28s %s\n", s, (min > 0 ? sprintf("%.2f", max / min) : "inf")
		}'
}

# load URL MODE [COMMAND]: wrk for $secs, keep-alive or close, COMMAND
# eval'ed half-way through; prints req/s.
load() {
	local hdr=() w
	[ "$2" = close ] && hdr=(-H 'Connection: close')
	wrk -t2 -c"$conns" -d"${secs}s" "${hdr[@]}" "$1" >"$tmp/wrk.out" &
	w=$!
	if [ -n "${3:-}" ]; then
		sleep "$(awk -v s="$secs" 'BEGIN {print s/2}')"
		eval "$3"
	fi
	wait "$w"
	awk '/^Requests\/sec/ {printf "%.0f", $2}' "$tmp/wrk.out"
}

# open_conns: each clusterd worker's open connections, as its last heartbeat said.
open_conns() {
	"$tmp/clusterd" ctl --control "$tmp/ctl.sock" status --json | jq -r '[.workers[].connections] | join(" ")' >"$tmp/open"
}

# wait_workers: until every clusterd worker is ready (waitup needs only one).
wait_workers() {
	for _ in $(seq 100); do
		[ "$("$tmp/clusterd" ctl --control "$tmp/ctl.sock" status --json | jq '[.workers[] | select(.state == "ready")] | length')" = "$workers" ] && return 0
		sleep 0.1
	done
	echo "not every worker is ready" >&2
	return 1
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

row() { printf '%-20s %-10s %9s req/s  workers:%s' "$1" "$2" "$3" "$4"; }

echo "wrk -t2 -c$conns -d${secs}s, $workers workers per server, $(nproc) CPUs"
printf '%-20s %-10s %15s  %-38s %s\n' server load throughput "requests per worker" busiest/idlest
for mode in ${MODES:-shared rr reuseport}; do
	for how in keepalive close; do
		port=$((port + 1))
		start_clusterd "$port" --sched "$mode"
		wait_workers
		rps=$(load "http://127.0.0.1:$port/" "$how" open_conns)
		counts=$("$tmp/clusterd" ctl --control "$tmp/ctl.sock" status --json | jq -r '[.workers[].requests] | join(" ")')
		row "clusterd $mode" "$how" "$rps" "$(spread <<<"$counts")"
		echo "  open mid-run: $(cat "$tmp/open")"
		stop "$cpid"
	done
done

# nginx logs each request's worker pid; counted when it has exited.
nginx_balance() {
	local name=$1 listen_opts=$2
	command -v nginx >/dev/null || return 0
	for how in keepalive close; do
		port=$((port + 1))
		mkdir -p "$tmp/nginx"
		: >"$tmp/nginx/access.log"
		sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|$port$listen_opts|" -e "s|@DIR@|$tmp/nginx|g" \
			-e "s|access_log off;|log_format p '\$pid'; access_log $tmp/nginx/access.log p buffer=256k;|" \
			"$here/nginx.conf" >"$tmp/nginx/nginx.conf"
		nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
		npid=$!
		pids+=("$npid")
		waitup "http://127.0.0.1:$port/"
		rps=$(load "http://127.0.0.1:$port/" "$how")
		kill -QUIT "$npid"
		wait "$npid" 2>/dev/null || true
		counts=$(sort "$tmp/nginx/access.log" | uniq -c | awk '{printf "%s ", $1}')
		row "$name" "$how" "$rps" "$(spread <<<"$counts")"
		echo
	done
}
[ "${PEERS:-1}" = 0 ] && exit 0
nginx_balance nginx ""
nginx_balance "nginx reuseport" " reuseport"

# Node cluster workers write their request counts when they stop.
if command -v node >/dev/null; then
	for how in keepalive close; do
		port=$((port + 1))
		: >"$tmp/node-counts"
		COUNTS_FILE=$tmp/node-counts PORT=$port WORKERS=$workers node "$here/node-cluster.js" &
		jpid=$!
		pids+=("$jpid")
		waitup "http://127.0.0.1:$port/"
		rps=$(load "http://127.0.0.1:$port/" "$how")
		stop "$jpid"
		sleep 0.5
		counts=$(awk '{printf "%s ", $2}' "$tmp/node-counts")
		row "node cluster" "$how" "$rps" "$(spread <<<"$counts")"
		echo
	done
fi
