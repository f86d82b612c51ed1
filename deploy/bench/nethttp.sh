#!/usr/bin/env bash
# The same net/http hello handler under clusterd.RunHTTP (WORKERS workers)
# and under plain net/http (one process, GOMAXPROCS=WORKERS), with fasthttp
# (its own API, "Hello World\n" as text/plain, GOMAXPROCS=WORKERS) as a third
# peer, interleaved in one run: keep-alive, pipelined (16 per request) and
# concurrency-1 latency; medians of the rounds and RunHTTP's ratios to each.
#
#   deploy/bench/nethttp.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# clusterd's own binary (its native "Hello World" handler, the same
# workers) runs beside them as the ceiling: RunHTTP does what it does and
# builds net/http's request and response on top.
#
# ASYNC=1 adds two more native handlers (asynchello.go), one answering at
# once and one answering the way RunHTTP does (asynchronously, from
# RunInline work), which splits RunHTTP's cost over the native handler
# into the asynchronous path and net/http's objects.
#
# NETHTTP_BIN=path uses that build of nethttp.go (for instance one built at
# another revision) instead of building it here. The fasthttp peer is a
# module of its own (deploy/bench/fasthttp) so the library's go.mod does not
# name fasthttp; building it needs the module proxy or a filled module cache.
#
# Needs wrk. Servers listen on 127.0.0.1 and are stopped by pid when the
# script ends.
set -euo pipefail
rounds=${1:-3} secs=${2:-5} conns=${3:-64}
. "$(dirname "$0")/lib.sh"
need_wrk

if [ -n "${NETHTTP_BIN:-}" ]; then
	cp "$NETHTTP_BIN" "$tmp/nethttp"
else
	go build -o "$tmp/nethttp" "$here/nethttp.go"
fi
(cd "$here/fasthttp" && go build -o "$tmp/fasthttp" .)
go build -o "$tmp/clusterd" "$root/cmd/clusterd"
declare -A pid
"$tmp/clusterd" --listen 127.0.0.1:8186 --workers "$workers" --log-level warn &
pids+=($!) pid[native]=$!
"$tmp/nethttp" -addr 127.0.0.1:8185 -workers "$workers" 2>/dev/null &
pids+=($!) pid[RunHTTP]=$!
GOMAXPROCS=$workers "$tmp/nethttp" -addr 127.0.0.1:8183 &
pids+=($!) pid[net/http]=$!
GOMAXPROCS=$workers "$tmp/fasthttp" -addr 127.0.0.1:8184 &
pids+=($!) pid[fasthttp]=$!
if [ "${ASYNC:-}" = 1 ]; then
	go build -o "$tmp/asynchello" "$here/asynchello.go"
	"$tmp/asynchello" -addr 127.0.0.1:8187 -workers "$workers" -async=false &
	pids+=($!) pid[direct]=$!
	"$tmp/asynchello" -addr 127.0.0.1:8188 -workers "$workers" -async &
	pids+=($!) pid[async]=$!
	waitup http://127.0.0.1:8187/
	waitup http://127.0.0.1:8188/
fi
waitup http://127.0.0.1:8185/
waitup http://127.0.0.1:8183/
waitup http://127.0.0.1:8184/
waitup http://127.0.0.1:8186/
declare -A url=([RunHTTP]=http://127.0.0.1:8185/ [net/http]=http://127.0.0.1:8183/ [fasthttp]=http://127.0.0.1:8184/ [native]=http://127.0.0.1:8186/)
names=(RunHTTP net/http fasthttp native)
if [ "${ASYNC:-}" = 1 ]; then
	url[direct]=http://127.0.0.1:8187/ url[async]=http://127.0.0.1:8188/
	names+=(direct async)
fi

echo "wrk -t1, $rounds interleaved rounds of ${secs}s, $workers workers / GOMAXPROCS=$workers, $(nproc) CPUs"
echo "cpu: the server's CPU time (all its processes) per request, in microseconds"
declare -A all
for r in $(seq "$rounds"); do
	for n in "${names[@]}"; do
		read -r ka kacpu _ < <(wrk_cpu "${pid[$n]}" -t1 -c"$conns" -d"${secs}s" "${url[$n]}")
		read -r pl plcpu _ < <(wrk_cpu "${pid[$n]}" -t1 -c"$conns" -d"${secs}s" -s "$here/pipeline.lua" "${url[$n]}")
		read -r _ c1cpu p50 < <(wrk_cpu "${pid[$n]}" -t1 -c1 -d"${secs}s" --latency "${url[$n]}")
		printf 'round %d  %-9s keep-alive %9.0f req/s %5.2f cpu  pipelined %9.0f req/s %5.2f cpu  c1 p50 %6.1f us %5.2f cpu\n' \
			"$r" "$n" "$ka" "$kacpu" "$pl" "$plcpu" "$p50" "$c1cpu"
		all[$n,ka]+="$ka " all[$n,pl]+="$pl " all[$n,p50]+="$p50 "
		all[$n,kacpu]+="$kacpu " all[$n,plcpu]+="$plcpu " all[$n,c1cpu]+="$c1cpu "
	done
done

echo
printf '%-9s %18s %8s %18s %8s %10s %8s\n' server "keep-alive req/s" cpu "pipelined req/s" cpu "c1 p50 us" cpu
declare -A med
for n in "${names[@]}"; do
	for m in ka pl p50 kacpu plcpu c1cpu; do med[$n,$m]=$(median <<<"${all[$n,$m]}"); done
	printf '%-9s %18.0f %8.2f %18.0f %8.2f %10.1f %8.2f\n' "$n" "${med[$n,ka]}" "${med[$n,kacpu]}" "${med[$n,pl]}" "${med[$n,plcpu]}" "${med[$n,p50]}" "${med[$n,c1cpu]}"
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
echo "native / net/http (the ceiling for RunHTTP): keep-alive $(ratio "${med[native,ka]}" "${med[net/http,ka]}")x, pipelined $(ratio "${med[native,pl]}" "${med[net/http,pl]}")x, c1 p50 $(ratio "${med[native,p50]}" "${med[net/http,p50]}")x"
for n in net/http fasthttp native; do
	echo "RunHTTP / $n: keep-alive $(ratio "${med[RunHTTP,ka]}" "${med[$n,ka]}")x, pipelined $(ratio "${med[RunHTTP,pl]}" "${med[$n,pl]}")x (above 1: RunHTTP serves more), c1 p50 $(ratio "${med[RunHTTP,p50]}" "${med[$n,p50]}")x (above 1: RunHTTP is slower)"
	echo "  CPU per request, RunHTTP / $n: keep-alive $(ratio "${med[RunHTTP,kacpu]}" "${med[$n,kacpu]}")x, pipelined $(ratio "${med[RunHTTP,plcpu]}" "${med[$n,plcpu]}")x, c1 $(ratio "${med[RunHTTP,c1cpu]}" "${med[$n,c1cpu]}")x (below 1: RunHTTP spends less)"
done
if [ "${ASYNC:-}" = 1 ]; then
	echo "native handlers: async / direct (the asynchronous path alone): keep-alive $(ratio "${med[async,ka]}" "${med[direct,ka]}")x, CPU per request $(ratio "${med[async,kacpu]}" "${med[direct,kacpu]}")x"
	echo "RunHTTP / async (net/http's objects): keep-alive $(ratio "${med[RunHTTP,ka]}" "${med[async,ka]}")x, CPU per request $(ratio "${med[RunHTTP,kacpu]}" "${med[async,kacpu]}")x"
fi
