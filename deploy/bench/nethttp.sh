#!/usr/bin/env bash
# The same net/http hello handler under clusterd.RunHTTP (WORKERS workers)
# and under plain net/http (one process, GOMAXPROCS=WORKERS), interleaved
# in one run: keep-alive, pipelined (16 per request) and concurrency-1
# latency; medians of the rounds and their ratios.
#
#   deploy/bench/nethttp.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk. Servers listen on 127.0.0.1 and are stopped by pid when the
# script ends.
set -euo pipefail
rounds=${1:-3} secs=${2:-5} conns=${3:-64}
. "$(dirname "$0")/lib.sh"
need_wrk

go build -o "$tmp/nethttp" "$here/nethttp.go"
"$tmp/nethttp" -addr 127.0.0.1:8185 -workers "$workers" 2>/dev/null &
pids+=($!)
GOMAXPROCS=$workers "$tmp/nethttp" -addr 127.0.0.1:8183 &
pids+=($!)
waitup http://127.0.0.1:8185/
waitup http://127.0.0.1:8183/
declare -A url=([RunHTTP]=http://127.0.0.1:8185/ [net/http]=http://127.0.0.1:8183/)
names=(RunHTTP net/http)

echo "wrk -t1, $rounds interleaved rounds of ${secs}s, $workers workers / GOMAXPROCS=$workers, $(nproc) CPUs"
declare -A all
for r in $(seq "$rounds"); do
	for n in "${names[@]}"; do
		ka=$(wrk -t1 -c"$conns" -d"${secs}s" "${url[$n]}" | awk '/^Requests\/sec/ {print $2}')
		pl=$(wrk -t1 -c"$conns" -d"${secs}s" -s "$here/pipeline.lua" "${url[$n]}" | awk '/^Requests\/sec/ {print $2}')
		p50=$(wrk -t1 -c1 -d"${secs}s" --latency "${url[$n]}" | awk '$1 == "50%" {v=$2; if (v ~ /ms$/) {sub(/ms/, "", v); v*=1000} else sub(/us/, "", v); print v}')
		printf 'round %d  %-9s keep-alive %9.0f req/s  pipelined %9.0f req/s  c1 p50 %6.1f us\n' "$r" "$n" "$ka" "$pl" "$p50"
		all[$n,ka]+="$ka " all[$n,pl]+="$pl " all[$n,p50]+="$p50 "
	done
done

echo
printf '%-9s %18s %18s %12s\n' server "keep-alive req/s" "pipelined req/s" "c1 p50 us"
for n in "${names[@]}"; do
	printf '%-9s %18.0f %18.0f %12.1f\n' "$n" "$(median <<<"${all[$n,ka]}")" "$(median <<<"${all[$n,pl]}")" "$(median <<<"${all[$n,p50]}")"
done
ka=$(awk -v a="$(median <<<"${all[RunHTTP,ka]}")" -v b="$(median <<<"${all[net/http,ka]}")" 'BEGIN {printf "%.2f", a/b}')
pl=$(awk -v a="$(median <<<"${all[RunHTTP,pl]}")" -v b="$(median <<<"${all[net/http,pl]}")" 'BEGIN {printf "%.2f", a/b}')
echo "RunHTTP / net/http: keep-alive ${ka}x, pipelined ${pl}x"
