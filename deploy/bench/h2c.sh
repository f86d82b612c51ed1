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

# h2load_rps URL: h2load's requests per second, then its failures.
h2load_rps() {
	local out
	out=$(h2load -n"$n" -c"$clients" -m"$streams" "$1")
	echo "$(awk '/^finished in/ {print $4}' <<<"$out") $(awk '/^requests:/ {print $10, "failed,", $12, "errored"}' <<<"$out")"
}

echo "h2load -n$n -c$clients -m$streams, $rounds interleaved rounds, $workers workers / GOMAXPROCS=$workers, $(nproc) CPUs"
declare -A all
interleave h2load_rps
