# Shared by the benchmark scripts: a scratch directory, servers started on
# 127.0.0.1 and stopped by pid on exit, and a wait until a URL answers.
# Source it after `set -euo pipefail`; it sets here, root, tmp, workers.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
workers=${WORKERS:-2}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

need_wrk() {
	command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
}

waitup() {
	for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "$1 does not answer" >&2
	return 1
}

# start_clusterd PORT [FLAGS…]: builds (or copies $CLUSTERD) and starts clusterd; sets cpid.
start_clusterd() {
	local port=$1
	shift
	if [ ! -x "$tmp/clusterd" ]; then
		if [ -n "${CLUSTERD:-}" ]; then cp "$CLUSTERD" "$tmp/clusterd"; else go build -o "$tmp/clusterd" "$root/cmd/clusterd"; fi
	fi
	"$tmp/clusterd" --listen "127.0.0.1:$port" --workers "$workers" --control "$tmp/ctl.sock" --log-level warn "$@" &
	cpid=$!
	pids+=("$cpid")
	waitup "http://127.0.0.1:$port/"
}

# start_nginx PORT [CONNECTIONS]: starts nginx if installed; sets npid; fails if not.
start_nginx() {
	command -v nginx >/dev/null || return 1
	mkdir -p "$tmp/nginx"
	sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|$1|" -e "s|@DIR@|$tmp/nginx|g" \
		-e "s|worker_connections 4096|worker_connections ${2:-4096}|" "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
	nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	npid=$!
	pids+=("$npid")
	waitup "http://127.0.0.1:$1/"
}

nginx_reload() { nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -s reload; }

# start_node PORT: starts the Node cluster peer if node is installed; sets jpid.
start_node() {
	command -v node >/dev/null || return 1
	PORT=$1 WORKERS=$workers node "$here/node-cluster.js" &
	jpid=$!
	pids+=("$jpid")
	waitup "http://127.0.0.1:$1/"
}

# median: the median of the numbers on standard input, separated by spaces
# or newlines.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# worker_ticks PID: CPU clock ticks (user + system) used so far by the
# children of PID (a master's workers; every thread's children).
worker_ticks() {
	local sum=0 w
	for w in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		[ -r "/proc/$w/stat" ] && sum=$((sum + $(awk '{print $14 + $15}' "/proc/$w/stat")))
	done
	echo "$sum"
}

# tree_ticks PID: CPU clock ticks (user + system) used so far by PID and
# its children (a master and its workers).
tree_ticks() {
	local t=0 p
	for p in "$1" $(pgrep -P "$1" || true); do
		[ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}

# wrk_cpu PID WRK-ARGS…: runs wrk against the server PID; prints req/s, the
# server's CPU microseconds per request, and wrk's p50 latency (us, when
# --latency is given).
wrk_cpu() {
	local pid=$1 out t0 t1
	shift
	t0=$(tree_ticks "$pid")
	out=$(wrk "$@")
	t1=$(tree_ticks "$pid")
	awk -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" '
		/^Requests\/sec/ {rps = $2}
		/requests in/ {n = $1}
		$1 == "50%" {v = $2; if (v ~ /ms$/) {sub(/ms/, "", v); v *= 1000} else sub(/us/, "", v); p50 = v}
		END {printf "%s %.2f %s\n", rps, (t1 - t0) * 1e6 / hz / n, (p50 == "" ? 0 : p50)}' <<<"$out"
}

# wrk_rps WRK-ARGS… URL: runs wrk; prints its requests per second, then its
# socket error and non-2xx lines joined on one line.
wrk_rps() {
	local out
	out=$(wrk "$@")
	echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out") $(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')"
}

# interleave MEASURE…: $rounds rounds over the servers in names (URLs in
# url), MEASURE… URL printing "REQ/S NOTES" for each; a line a run, led by
# $indent, and each run's req/s added to all[SERVER], which the caller
# declares. Then each server's median and clusterd's ratio to it. MEASURE
# sees the caller's variables (this function's locals: round, srv, out,
# base, m).
interleave() {
	local round srv out base m
	for round in $(seq "$rounds"); do
		for srv in "${names[@]}"; do
			out=$("$@" "${url[$srv]}")
			printf '%sround %d  %-13s %10.0f req/s  %s\n' "${indent:-}" "$round" "$srv" "${out%% *}" "${out#* }"
			all[$srv]+="${out%% *} "
		done
	done
	base=$(median <<<"${all[clusterd]}")
	echo
	printf '%s%-13s %12s %10s\n' "${indent:-}" server "median req/s" "clusterd/x"
	for srv in "${names[@]}"; do
		m=$(median <<<"${all[$srv]}")
		printf '%s%-13s %12.0f %10.2f\n' "${indent:-}" "$srv" "$m" "$(awk -v a="$base" -v b="$m" 'BEGIN {print a/b}')"
	done
}

# wrk_twice NAME URL COMMAND: wrk keep-alive load on URL (-t2 -c$conns for
# $secs), COMMAND eval'ed (in this shell) at a third and at two thirds of
# it; sets load to (REQUESTS REQ/S SOCKET-ERRORS NON-2XX) and leaves wrk's
# report in $tmp/NAME.wrk.
wrk_twice() {
	local name=$1 target=$2 command=$3 w third
	third=$(awk -v s="$secs" 'BEGIN {print s/3}')
	wrk -t2 -c"$conns" -d"${secs}s" "$target" >"$tmp/$name.wrk" &
	w=$!
	pids+=("$w")
	sleep "$third"
	eval "$command"
	sleep "$third"
	eval "$command"
	wait "$w"
	local reqs rps errs non2xx
	reqs=$(awk '/requests in/ {print $1}' "$tmp/$name.wrk")
	rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/$name.wrk")
	errs=$(awk '/Socket errors/ {gsub(",", ""); s=0; for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; print s}' "$tmp/$name.wrk")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/$name.wrk")
	load=("$reqs" "$rps" "${errs:-0}" "${non2xx:-0}")
}

# losses NAME WIDTH: wrk_twice's load as a line, NAME in a column WIDTH wide.
losses() {
	printf "%-${2}s %10s requests %6s socket errors %6s non-2xx\n" "$1" "${load[0]}" "${load[2]}" "${load[3]}"
}

# rss PID: kB of PID and its children.
rss() {
	local total=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
	done
	echo "$total"
}

# idle_rss PID N IDLECONNS-ARGS…: the kB of PID and its children before and
# after N connections have each made one request and sit idle
# (idleconns.go, built on first use); prints "BEFORE AFTER". Call it in a
# command substitution: it runs the connections as a coprocess.
idle_rss() {
	local pid=$1 n=$2 before after
	shift 2
	[ -x "$tmp/idleconns" ] || go build -o "$tmp/idleconns" "$here/idleconns.go"
	sleep 0.5
	before=$(rss "$pid")
	coproc HOLD { "$tmp/idleconns" -n "$n" "$@"; }
	read -r _ _ <&"${HOLD[0]}"
	sleep 1
	after=$(rss "$pid")
	exec {HOLD[1]}>&-
	wait "$HOLD_PID" || true
	echo "$before $after"
}
