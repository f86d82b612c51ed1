#!/usr/bin/env bash
# The native plaintext path of this checkout against an earlier revision,
# interleaved in one run: keep-alive, pipelined (16 per write) and a new
# connection per request, each reported as a ratio to the earlier build.
#
#   deploy/bench/versus.sh REV [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Beside req/s it reports the workers' CPU time per request (utime + stime
# from /proc), which drifts far less than throughput on a shared machine.
#
# REV is any git revision (a commit, a tag, HEAD~10). Needs wrk. WORKERS sets
# the worker processes of each server (default 2). Servers listen on
# 127.0.0.1 and are stopped by pid when the script ends.
set -euo pipefail
rev=${1:?usage: versus.sh REV [ROUNDS] [SECONDS] [CONNECTIONS]}
rounds=${2:-3} secs=${3:-5} conns=${4:-64}
. "$(dirname "$0")/lib.sh"
need_wrk

mkdir -p "$tmp/base"
git -C "$root" archive "$rev" | tar -x -C "$tmp/base"
(cd "$tmp/base" && go build -o "$tmp/clusterd-base" ./cmd/clusterd)
go build -o "$tmp/clusterd-head" "$root/cmd/clusterd"

declare -A port=([base]=${BASE_PORT:-8191} [head]=${HEAD_PORT:-8192}) master
for n in base head; do
	"$tmp/clusterd-$n" --listen "127.0.0.1:${port[$n]}" --workers "$workers" \
		--control "$tmp/$n.sock" --log-level warn &
	pids+=($!)
	master[$n]=$!
	waitup "http://127.0.0.1:${port[$n]}/"
done

hz=$(getconf CLK_TCK)

declare -A args=(
	[keep-alive]="-t2 -c$conns"
	[pipelined]="-t2 -c$conns -s $here/pipeline.lua"
	[new-conn]="-t2 -c$conns"
)
# wrk drops a -H value without ": " (Connection:close) without a word.
declare -A hdr=([new-conn]="Connection: close")
tests=(keep-alive pipelined new-conn)
echo "wrk, $rounds interleaved rounds of ${secs}s, $workers workers each, $(nproc) CPUs; base $(git -C "$root" rev-parse --short "$rev"), head $(git -C "$root" rev-parse --short HEAD)"
declare -A all cpu
for r in $(seq "$rounds"); do
	for t in "${tests[@]}"; do
		for n in base head; do
			t0=$(worker_ticks "${master[$n]}")
			# shellcheck disable=SC2086
			h=()
			[ -n "${hdr[$t]:-}" ] && h=(-H "${hdr[$t]}")
			out=$(wrk ${args[$t]} "${h[@]}" -d"${secs}s" "http://127.0.0.1:${port[$n]}/")
			t1=$(worker_ticks "${master[$n]}")
			rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
			reqs=$(awk '/requests in/ {print $1}' <<<"$out")
			us=$(awk -v t=$((t1 - t0)) -v n="$reqs" -v hz="$hz" 'BEGIN {print t * 1e6 / hz / n}')
			errs=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
			printf 'round %d  %-10s %-5s %10.0f req/s %6.2f us CPU/req %s\n' "$r" "$t" "$n" "$rps" "$us" "$errs"
			all[$t.$n]+="$rps "
			cpu[$t.$n]+="$us "
		done
	done
done

echo
printf '%-10s %12s %12s %10s %14s %14s %10s\n' test "base req/s" "head req/s" "head/base" "base us CPU" "head us CPU" "head/base"
for t in "${tests[@]}"; do
	b=$(median <<<"${all[$t.base]}")
	h=$(median <<<"${all[$t.head]}")
	cb=$(median <<<"${cpu[$t.base]}")
	ch=$(median <<<"${cpu[$t.head]}")
	printf '%-10s %12.0f %12.0f %10.2f %14.2f %14.2f %10.2f\n' "$t" "$b" "$h" "$(awk -v a="$h" -v b="$b" 'BEGIN {print a/b}')" \
		"$cb" "$ch" "$(awk -v a="$ch" -v b="$cb" 'BEGIN {print a/b}')"
done
