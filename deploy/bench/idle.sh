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

# measure NAME PID ADDR: PID's memory before and after $n idle connections to ADDR.
measure() {
	local before after
	read -r before after <<<"$(idle_rss "$2" "$n" -addr "$3")"
	printf '%-13s %8d kB before %8d kB with %d idle connections: %6.0f bytes each\n' \
		"$1" "$before" "$after" "$n" "$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN {print (a-b)*1024/n}')"
}

start_clusterd 8181 --idle-timeout 60s
measure clusterd "$cpid" 127.0.0.1:8181
if start_nginx 8184 16384; then measure nginx "$npid" 127.0.0.1:8184; fi
if start_node 8182; then measure node-cluster "$jpid" 127.0.0.1:8182; fi
