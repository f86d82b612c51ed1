#!/usr/bin/env bash
# Requests lost to restarts: wrk keep-alive load while each server is
# restarted twice in its own zero-downtime way, one after the other in one run:
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
. "$(dirname "$0")/lib.sh"
need_wrk

# measure NAME URL RESTART-COMMAND: wrk for $secs, restarting at 1/3 and 2/3.
measure() { wrk_twice "$@" && losses "$1" 13; }

pidsof() {
	"$tmp/clusterd" ctl --control "$tmp/ctl.sock" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("generation", s["master"]["generation"], "pids", " ".join(str(w["pid"]) for w in s["workers"] if w["state"] == "ready"))'
}

echo "wrk -t2 -c$conns -d${secs}s, two restarts each, $workers workers"
start_clusterd 8181
before=$(pidsof)
measure clusterd http://127.0.0.1:8181/ \
	'if [ -z "${mid:-}" ]; then kill -HUP $cpid; sleep 1; mid=$(pidsof); else "$tmp/clusterd" ctl --control "$tmp/ctl.sock" reload >/dev/null; fi'
echo "              workers: $before → $mid → $(pidsof)"
if start_nginx 8184; then measure nginx http://127.0.0.1:8184/ nginx_reload; fi
if start_node 8182; then measure node-cluster http://127.0.0.1:8182/ 'kill -HUP $jpid'; fi
