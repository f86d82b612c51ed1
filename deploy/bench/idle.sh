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
. "$(dirname "$0")/lib.sh"
ulimit -n 20000 2>/dev/null || true

# rss PID: kB of PID and its children.
rss() {
	local total=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
	done
	echo "$total"
}

measure() {
	local name=$1 pid=$2 addr=$3
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
start_clusterd 8181 --idle-timeout 60s
measure clusterd "$cpid" 127.0.0.1:8181
if start_nginx 8184 16384; then measure nginx "$npid" 127.0.0.1:8184; fi
if start_node 8182; then measure node-cluster "$jpid" 127.0.0.1:8182; fi
