#!/usr/bin/env bash
# HTTP/2 over cleartext TCP (prior knowledge): clusterd --h2c against Go
# net/http with unencrypted HTTP/2, interleaved in one run, with h2load.
#
#   deploy/bench/h2c.sh [ROUNDS] [REQUESTS] [CLIENTS] [STREAMS]
#
# Needs h2load (apt-get install -y nghttp2-client). WORKERS sets clusterd's
# processes (default 2); net/http runs with GOMAXPROCS=WORKERS. Servers
# listen on 127.0.0.1 and are stopped by pid when the script ends.
set -euo pipefail
rounds=${1:-3} n=${2:-200000} clients=${3:-16} streams=${4:-10}
. "$(dirname "$0")/lib.sh"
command -v h2load >/dev/null || { echo "h2load is not installed (apt-get install -y nghttp2-client)" >&2; exit 1; }

declare -A url
start_clusterd 8191 --h2c
url[clusterd]=http://127.0.0.1:8191/
go build -o "$tmp/nethttp" "$here/nethttp.go"
GOMAXPROCS=$workers "$tmp/nethttp" -addr 127.0.0.1:8193 -h2c &
pids+=($!)
waitup http://127.0.0.1:8193/
url[net/http]=http://127.0.0.1:8193/
names=(clusterd net/http)

echo "h2load -n$n -c$clients -m$streams, $rounds interleaved rounds, $workers workers / GOMAXPROCS=$workers, $(nproc) CPUs"
declare -A all
for r in $(seq "$rounds"); do
	for s in "${names[@]}"; do
		out=$(h2load -n"$n" -c"$clients" -m"$streams" "${url[$s]}")
		rps=$(awk '/^finished in/ {print $4}' <<<"$out")
		fails=$(awk '/^requests:/ {print $10, "failed,", $12, "errored"}' <<<"$out")
		printf 'round %d  %-9s %10.0f req/s  %s\n' "$r" "$s" "$rps" "$fails"
		all[$s]+="$rps "
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(median <<<"${all[clusterd]}")
echo
printf '%-9s %12s %10s\n' server "median req/s" "clusterd/x"
for s in "${names[@]}"; do
	m=$(median <<<"${all[$s]}")
	printf '%-9s %12.0f %10.2f\n' "$s" "$m" "$(awk -v a="$base" -v b="$m" 'BEGIN {print a/b}')"
done
