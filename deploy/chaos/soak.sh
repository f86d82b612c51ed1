#!/usr/bin/env bash
# Soak: clusterd under load and chaos for DURATION seconds, then checks.
#
#   deploy/chaos/soak.sh DURATION [WORKERS]      (default 4 workers)
#   SCHED=rr deploy/chaos/soak.sh DURATION       (--sched; default shared)
#
# Builds clusterd, starts it on a free 127.0.0.1 port and, for DURATION:
#   wrk -t2 -c64 against GET /
#   a loop of large POSTs to /echo (200 KB, 480 KB chunked, 700 KB, 1 MB of
#     markup, the body JSON escaping inflates most)
#   4 slow readers of a 1 MB /echo every 15 s (curl --limit-rate 20k, 12 s each)
#   a rolling restart (clusterd ctl reload) every 30 s
#   kill -9 of a random worker every 20 s; each victim is stopped first and
#     the connections it holds are counted: only those may fail
# Then it checks, and exits 1 if any check fails:
#   no panic in the log, and no worker exit other than the kills
#   wrk: no non-2xx; socket errors <= the connections the killed workers held
#   large POSTs: failures <= kills (one POST is in flight at a time), and
#     every reply byte for byte the one an idle server gave at the start
#   mean worker RSS at the end (idle) <= 1.2 x at the start (idle, warmed up);
#     in runs of 300 s or more, the master's RSS at the end <= 1.2 x half-way
#     (its Go heap grows over the first few dozen restarts, then stays); the
#     master holds no more fds than at the start (+2)
#   every reload succeeded; the master still runs, with every worker serving
# Needs go, wrk and curl. Only processes it started are signalled; all are
# stopped when it exits.
set -euo pipefail
duration=${1:?usage: soak.sh DURATION [WORKERS]}
workers=${2:-4}
case $duration in '' | *[!0-9]*) echo "soak.sh: DURATION must be whole seconds" >&2; exit 2 ;; esac
for tool in go wrk curl; do
	command -v "$tool" >/dev/null || { echo "soak.sh: $tool is not installed (apt-get install -y wrk curl)" >&2; exit 2; }
done
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
bin=$tmp/clusterd ctl=$tmp/ctl.sock log=$tmp/clusterd.log
mpid='' bg=()

# kill_tree PID: PID and, first, everything it started (a loop's curl).
kill_tree() {
	local child
	for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
	kill "$1" 2>/dev/null || true
}

cleanup() {
	for p in "${bg[@]}"; do kill_tree "$p"; done
	if [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null; then
		kill -TERM "$mpid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$mpid" 2>/dev/null || true
	fi
	wait 2>/dev/null || true
	if [ -n "${KEEP_LOG:-}" ]; then cp "$log" "$KEEP_LOG" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ctl() { timeout 60 "$bin" ctl --control "$ctl" "$@"; }

# ready_pids: the pids of the workers that serve, from ctl status.
ready_pids() { ctl status 2>/dev/null | awk '$4 == "ready" {print $2}'; }

wait_ready() {
	for _ in $(seq 200); do
		[ "$(ready_pids | wc -l)" -ge "$workers" ] && return 0
		sleep 0.1
	done
	echo "soak.sh: $workers workers not ready; log:" >&2
	tail -n 20 "$log" >&2
	return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# mean_rss: the mean VmRSS of the serving workers, in KiB.
mean_rss() {
	local total=0 n=0 p
	for p in $(ready_pids); do total=$((total + $(rss_kib "$p"))); n=$((n + 1)); done
	echo $((total / (n > 0 ? n : 1)))
}

# held PID: the established connections PID holds on our port.
held() {
	local hex
	hex=$(printf ':%04X' "$port")
	{ find "/proc/$1/fd" -type l -printf '%l\n' 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/inode \1/p'; cat /proc/net/tcp /proc/net/tcp6; } |
		awk -v hex="$hex" '$1 == "inode" {mine[$2] = 1; next}
			$2 ~ hex"$" && $4 != "0A" && ($10 in mine) {n++} END {print n + 0}'
}

body() { yes '<<<<<<<<<<<<&>"\' | head -c "$1" >"$tmp/body$1" || true; }

# post SIZE: POSTs the SIZE-byte body to /echo and prints the status and
# whether the reply is the reference one for SIZE (ok, bad, or - when it
# cannot tell: the request failed or there is no reference yet).
post() {
	local size=$1 code chunk=() reply=$tmp/reply.$BASHPID same=-
	[ "$size" = 480000 ] && chunk=(-H 'Transfer-Encoding: chunked')
	code=$(curl -sS -o "$reply" -w '%{http_code}' --max-time 10 "${chunk[@]}" \
		--data-binary "@$tmp/body$size" "$url/echo" 2>/dev/null) || code=000
	if [ "$code" = 200 ] && [ -s "$tmp/ref$size" ]; then
		cmp -s "$reply" "$tmp/ref$size" && same=ok || same=bad
		if [ "$same" = bad ] && [ ! -e "$tmp/bad" ]; then
			cp "$reply" "$tmp/bad" && echo "$size" >"$tmp/bad.size"
		fi
	fi
	echo "$code $same"
	rm -f "$reply"
}

# post_loop END: large POSTs until END (epoch seconds); one line per POST:
# size, status, and whether the reply was the reference one.
post_loop() {
	local end=$1 size
	while [ "$(date +%s)" -lt "$end" ]; do
		for size in 200000 480000 700000 1000000; do
			echo "$size $(post "$size")" >>"$tmp/posts"
		done
	done
}

# slow_loop END: 4 slow readers of a 1 MB /echo every 15 s until END.
slow_loop() {
	local end=$1 i
	while [ "$(date +%s)" -lt "$end" ]; do
		for i in 1 2 3 4; do
			curl -s -o /dev/null --limit-rate 20k --max-time 12 --data-binary "@$tmp/body1000000" "$url/echo" &
		done
		echo 4 >>"$tmp/slow"
		sleep 15
		wait
	done
}

echo "soak: building clusterd"
(cd "$root" && go build -o "$bin" ./cmd/clusterd)
for size in 200000 480000 700000 1000000; do body "$size"; done
"$bin" --listen 127.0.0.1:0 --workers "$workers" --sched "${SCHED:-shared}" --control "$ctl" \
	--log-format json --log-level info 2>"$log" &
mpid=$!
for _ in $(seq 100); do grep -qs '"@message":"listening"' "$log" && break; sleep 0.1; done
addr=$(grep '"@message":"listening"' "$log" | grep -o '"addr":"[^"]*"' | head -n1 | cut -d'"' -f4)
[ -n "$addr" ] || { echo "soak.sh: clusterd did not start; log:" >&2; cat "$log" >&2; exit 1; }
port=${addr##*:} url=http://$addr
wait_ready

# The reference replies, one POST at a time on an idle server; every later
# reply to the same body must be byte for byte the same.
for size in 200000 480000 700000 1000000; do
	chunk=()
	[ "$size" = 480000 ] && chunk=(-H 'Transfer-Encoding: chunked')
	curl -fsS -o "$tmp/ref$size" --max-time 10 "${chunk[@]}" --data-binary "@$tmp/body$size" "$url/echo"
	if grep -q 'HTTP/1.1 ' "$tmp/ref$size"; then
		echo "soak.sh: the /echo reply to $size bytes holds another response" >&2
		exit 1
	fi
done

# Warm up with the same mix, then take the idle baseline.
warm=$(($(date +%s) + 5))
post_loop "$warm"
wrk -t2 -c64 -d3s "$url/" >/dev/null
sleep 2
rss_start=$(mean_rss)
mrss_start=$(rss_kib "$mpid") mfds_start=$(fds "$mpid")
: >"$tmp/posts"

echo "soak: ${duration}s, $workers workers (${SCHED:-shared}) on $addr: wrk -t2 -c64, large POSTs, slow readers, ctl reload every 30s, kill -9 every 20s"
start=$(date +%s)
end=$((start + duration))
timeout $((duration + 30)) wrk -t2 -c64 -d"${duration}s" --timeout 5s "$url/" >"$tmp/wrk" 2>&1 &
wrkpid=$!
bg+=("$wrkpid")
post_loop "$end" &
bg+=($!)
slow_loop "$end" &
bg+=($!)

kills=0 cut=0 next_kill=$((start + 10)) next_reload=$((start + 30)) mrss_mid=''
while [ "$(date +%s)" -lt "$end" ]; do
	sleep 1
	now=$(date +%s)
	if [ -z "$mrss_mid" ] && [ "$now" -ge $((start + duration / 2)) ]; then
		mrss_mid=$(rss_kib "$mpid")
	fi
	if [ "$now" -ge "$next_reload" ]; then
		next_reload=$((next_reload + 30))
		(ctl reload >/dev/null 2>>"$tmp/reload.err" && echo ok || echo fail) >>"$tmp/reloads" &
		bg+=($!)
	fi
	if [ "$now" -ge "$next_kill" ]; then
		next_kill=$((next_kill + 20))
		victim=$(ready_pids | shuf -n1 || true)
		# Only a worker of our master: its parent is $mpid.
		if [ -n "$victim" ] && [ "$(awk '{print $4}' "/proc/$victim/stat" 2>/dev/null)" = "$mpid" ]; then
			kill -STOP "$victim" 2>/dev/null || continue # rolled away meanwhile
			n=$(held "$victim")
			kill -KILL "$victim"
			kills=$((kills + 1)) cut=$((cut + n))
			echo "soak: t=$((now - start))s killed worker $victim, which held $n connections"
		fi
	fi
done
wait "$wrkpid" || true
for p in "${bg[@]}"; do wait "$p" 2>/dev/null || true; done
bg=()
serving=0
wait_ready && serving=1
sleep 3
rss_end=$(mean_rss)
mrss_end=$(rss_kib "$mpid") mfds_end=$(fds "$mpid")

# Figures.
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk")
sockerr=$(awk '/Socket errors/ {gsub(",", ""); s=0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s}' "$tmp/wrk")
sockline=$(grep 'Socket errors' "$tmp/wrk" || echo "Socket errors: none")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk")
sockerr=${sockerr:-0} non2xx=${non2xx:-0}
posts=$(wc -l <"$tmp/posts")
post_fail=$(awk '$2 != "200"' "$tmp/posts" | wc -l)
post_bad=$(awk '$3 == "bad"' "$tmp/posts" | wc -l)
slow=$(awk '{s += $1} END {print s + 0}' "$tmp/slow" 2>/dev/null || echo 0)
reloads=$(grep -c ok "$tmp/reloads" 2>/dev/null || true)
reload_fail=$(grep -c fail "$tmp/reloads" 2>/dev/null || true)
reloads=${reloads:-0} reload_fail=${reload_fail:-0}
panics=$(grep -c 'panic' "$log" || true)
exits=$(grep -c '"@message":"worker exited unexpectedly"' "$log" || true)

fails=0
check() { # check OK? MESSAGE
	if [ "$1" = 1 ]; then echo "  ok    $2"; else echo "  FAIL  $2"; fails=$((fails + 1)); fi
}
echo "soak: results after ${duration}s"
echo "  wrk: ${requests:-0} requests, $non2xx non-2xx, $sockerr socket errors ($sockline)"
echo "  large POSTs: $posts sent, $post_fail failed, $post_bad answered with a wrong reply; slow readers: $slow started"
echo "  rolling restarts: $reloads ok, $reload_fail failed; kills: $kills (their workers held $cut connections)"
echo "  worker RSS (mean, idle): start $rss_start KiB, end $rss_end KiB"
mrss_mid=${mrss_mid:-$mrss_start}
echo "  master: RSS start $mrss_start KiB, half-way $mrss_mid KiB, end $mrss_end KiB; open fds start $mfds_start, end $mfds_end"
check "$([ "$panics" -eq 0 ] && echo 1)" "panics in the log: $panics"
check "$([ "$exits" -le "$kills" ] && echo 1)" "unexpected worker exits $exits <= kills $kills"
check "$([ "$non2xx" -eq 0 ] && echo 1)" "wrk non-2xx responses: $non2xx"
check "$([ "$sockerr" -le "$cut" ] && echo 1)" "wrk socket errors $sockerr <= connections held by killed workers $cut"
check "$([ "${requests:-0}" -gt 0 ] && echo 1)" "wrk served requests: ${requests:-0}"
check "$([ "$post_fail" -le "$kills" ] && echo 1)" "large POSTs failed $post_fail <= kills $kills"
check "$([ "$post_bad" -eq 0 ] && echo 1)" "large POSTs answered with another reply than the reference: $post_bad"
check "$([ "$reload_fail" -eq 0 ] && echo 1)" "rolling restarts failed: $reload_fail$([ -s "$tmp/reload.err" ] && echo " ($(tr '\n' ' ' <"$tmp/reload.err"))")"
check "$([ $((rss_end * 10)) -le $((rss_start * 12)) ] && echo 1)" "worker RSS end/start: $(awk -v a="$rss_end" -v b="$rss_start" 'BEGIN {printf "%.3f", a / b}') <= 1.2"
mratio=$(awk -v a="$mrss_end" -v b="$mrss_mid" 'BEGIN {printf "%.3f", a / b}')
if [ "$duration" -ge 300 ]; then
	check "$([ $((mrss_end * 10)) -le $((mrss_mid * 12)) ] && echo 1)" "master RSS end/half-way: $mratio <= 1.2"
else
	echo "  --    master RSS end/half-way: $mratio (judged from 300 s on: before, its heap still grows)"
fi
check "$([ "$mfds_end" -le $((mfds_start + 2)) ] && echo 1)" "master fds $mfds_end <= $mfds_start + 2 (nothing leaks across restarts)"
check "$(kill -0 "$mpid" 2>/dev/null && echo 1)" "master $mpid still running"
check "$serving" "$workers workers serving at the end"
if [ -e "$tmp/bad" ]; then
	size=$(cat "$tmp/bad.size")
	echo "soak: the first wrong reply to $size bytes, against the reference: $(cmp "$tmp/bad" "$tmp/ref$size" 2>&1 | head -n1)"
	off=$(cmp "$tmp/bad" "$tmp/ref$size" 2>/dev/null | awk '{print $5 + 0}' | head -n1 || true)
	echo "  wrong reply from there: $(tail -c +"${off:-1}" "$tmp/bad" 2>/dev/null | head -c 160 | tr -c '[:print:]' '.' || true)"
fi
if [ "$fails" -gt 0 ]; then
	echo "soak: FAIL ($fails checks); last log lines:"
	grep -v '"@level":"info"' "$log" | tail -n 15
	exit 1
fi
echo "soak: PASS"
