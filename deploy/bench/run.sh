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
for r in $(seq "$rounds"); do
	for n in "${names[@]}"; do
		out=$(wrk -t2 -c"$conns" -d"${secs}s" "${url[$n]}")
		rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
		errs=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
		printf 'round %d  %-13s %10.0f req/s %s\n' "$r" "$n" "$rps" "$errs"
		all[$n]+="$rps "
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(median <<<"${all[clusterd]}")
echo
printf '%-13s %12s %10s\n' server "median req/s" "clusterd/x"
for n in "${names[@]}"; do
	m=$(median <<<"${all[$n]}")
	printf '%-13s %12.0f %10.2f\n' "$n" "$m" "$(awk -v a="$base" -v b="$m" 'BEGIN {print a/b}')"
done
