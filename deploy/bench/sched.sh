#!/usr/bin/env bash
# Throughput of clusterd's scheduling modes side by side, interleaved in one
# run: new connections (one request each, -H 'Connection: close') and
# keep-alive, reported as ratios to shared, with the CPU time per request
# (utime + stime) of the workers and of the master.
#
#   deploy/bench/sched.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk. WORKERS sets the worker processes (default 2); NAMES the modes
# (default "shared rr rr-least-conns reuseport"; shared comes first). Servers listen
# on 127.0.0.1 and are stopped by pid when the script ends.
set -euo pipefail
rounds=${1:-3} secs=${2:-5} conns=${3:-64}
. "$(dirname "$0")/lib.sh"
need_wrk

declare -A port=([shared]=8391 [rr]=8392 [rr-least-conns]=8393 [reuseport]=8394) master=()
names=(${NAMES:-shared rr rr-least-conns reuseport})
for n in "${names[@]}"; do
	case $n in
	rr-least-conns) flags=(--sched rr --rr-policy least-conns) ;;
	*) flags=(--sched "$n") ;;
	esac
	start_clusterd "${port[$n]}" --control "$tmp/ctl-$n.sock" "${flags[@]}"
	master[$n]=$cpid
done

# ticks PID: the CPU time, in clock ticks, of master PID's workers and
# of the master itself, "WORKERS MASTER".
ticks() { echo "$(worker_ticks "$1") $(awk '{print $14 + $15}' "/proc/$1/stat")"; }
hz=$(getconf CLK_TCK)


echo "wrk -t2 -c$conns -d${secs}s, $rounds interleaved rounds, $workers workers, $(nproc) CPUs"
for how in close keepalive; do
	hdr=()
	[ "$how" = close ] && hdr=(-H 'Connection: close')
	declare -A all=() wcpu=() mcpu=()
	for r in $(seq "$rounds"); do
		for n in "${names[@]}"; do
			read -r w0 m0 <<<"$(ticks "${master[$n]}")"
			out=$(wrk -t2 -c"$conns" -d"${secs}s" "${hdr[@]}" "http://127.0.0.1:${port[$n]}/")
			read -r w1 m1 <<<"$(ticks "${master[$n]}")"
			rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
			reqs=$(awk '/requests in/ {print $1}' <<<"$out")
			wus=$(awk -v t=$((w1 - w0)) -v n="$reqs" -v hz="$hz" 'BEGIN {print t * 1e6 / hz / n}')
			mus=$(awk -v t=$((m1 - m0)) -v n="$reqs" -v hz="$hz" 'BEGIN {print t * 1e6 / hz / n}')
			errs=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
			printf 'round %d %-9s %-15s %10.0f req/s  CPU/req: workers %5.1f us, master %5.1f us %s\n' "$r" "$how" "$n" "$rps" "$wus" "$mus" "$errs"
			all[$n]+="$rps "
			wcpu[$n]+="$wus "
			mcpu[$n]+="$mus "
		done
	done
	base=$(median <<<"${all[shared]}")
	for n in "${names[@]}"; do
		m=$(median <<<"${all[$n]}")
		printf '%-9s %-15s median %10.0f req/s  %5.2f× shared  CPU/req: workers %5.1f us, master %5.1f us\n' "$how" "$n" "$m" \
			"$(awk -v a="$m" -v b="$base" 'BEGIN {print a/b}')" "$(median <<<"${wcpu[$n]}")" "$(median <<<"${mcpu[$n]}")"
	done
	unset all wcpu mcpu
done
