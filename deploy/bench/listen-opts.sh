#!/usr/bin/env bash
# New-connection throughput with the TCP listen options: wrk with
# "Connection: close" (one request per connection) against clusterd as is,
# with --tcp-defer-accept and with --tcp-fastopen 256, in interleaved rounds.
#
#   deploy/bench/listen-opts.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk. clusterd listens on 127.0.0.1 and is stopped by pid.
set -euo pipefail
rounds=${1:-3} secs=${2:-5} conns=${3:-64}
. "$(dirname "$0")/lib.sh"
need_wrk

variants=("plain" "--tcp-defer-accept" "--tcp-fastopen 256")
echo "wrk -t2 -c$conns -d${secs}s -H 'Connection: close', $workers workers, $rounds rounds"
echo "net.ipv4.tcp_fastopen = $(cat /proc/sys/net/ipv4/tcp_fastopen) (2 or 3 lets a server use it; wrk's client never does)"
for r in $(seq "$rounds"); do
	for i in "${!variants[@]}"; do
		v=${variants[$i]}
		flags=()
		[ "$v" = plain ] || read -r -a flags <<<"$v"
		start_clusterd 8190 "${flags[@]}"
		wrk -t2 -c"$conns" -d"${secs}s" -H 'Connection: close' http://127.0.0.1:8190/ >"$tmp/w" || true
		kill "$cpid"; wait "$cpid" 2>/dev/null || true
		printf '%s\t%s\t%s\n' "$i" "$(awk '/Requests\/sec/ {print $2}' "$tmp/w")" \
			"$(awk '/Socket errors/ {gsub(",", ""); s=0; for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; print s}' "$tmp/w")" >>"$tmp/results"
	done
done
for i in "${!variants[@]}"; do
	awk -F'\t' -v i="$i" '$1 == i {print $2}' "$tmp/results" | sort -n >"$tmp/v"
	errs=$(awk -F'\t' -v i="$i" '$1 == i {e += $3} END {print e + 0}' "$tmp/results")
	printf '%-20s median %9s req/s  (min %s, max %s)  socket errors %s\n' "${variants[$i]}" \
		"$(awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}' "$tmp/v")" "$(head -1 "$tmp/v")" "$(tail -1 "$tmp/v")" "$errs"
done
