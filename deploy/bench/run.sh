#!/usr/bin/env bash
# Throughput of clusterd against its peers, interleaved in one run so that
# they share the machine's conditions; reported as ratios to clusterd.
#
#   deploy/bench/run.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk; uses nginx and node when installed
# (apt-get install -y wrk nginx-light). WORKERS sets the processes per
# server (default 2). Servers listen on 127.0.0.1 and are stopped by pid
# when the script ends.
set -euo pipefail
rounds=${1:-3} secs=${2:-5} conns=${3:-64}
. "$(dirname "$0")/lib.sh"
need_wrk

declare -A url
start_clusterd 8181
url[clusterd]=http://127.0.0.1:8181/
go build -o "$tmp/nethttp" "$here/nethttp.go"
"$tmp/nethttp" -addr 127.0.0.1:8183 &
pids+=($!)
waitup http://127.0.0.1:8183/
url[net/http]=http://127.0.0.1:8183/
start_nginx 8184 && url[nginx]=http://127.0.0.1:8184/
start_node 8182 && url[node-cluster]=http://127.0.0.1:8182/

names=(clusterd)
for n in nginx node-cluster net/http; do [ -n "${url[$n]:-}" ] && names+=("$n"); done

echo "wrk -t2 -c$conns -d${secs}s, $rounds interleaved rounds, $workers workers each, $(nproc) CPUs"
declare -A all
interleave wrk_rps -t2 -c"$conns" -d"${secs}s"
