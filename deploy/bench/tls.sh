#!/usr/bin/env bash
# HTTPS: clusterd beside nginx with the same ECDSA P-256 certificate, worker
# count, protocol versions (TLS 1.2 and 1.3), cipher suites and groups
# (nginx-tls.conf), interleaved rounds:
#   - keep-alive requests per second (wrk -c64);
#   - new connections per second (Connection: close, wrk -c32; wrk
#     resumes its TLS session on each, so these are abbreviated handshakes);
#   - full handshakes per second (8 openssl s_time -new side by side);
#   - memory per idle TLS connection (N connections, one request each).
# Beside req/s: the workers' CPU time per request (utime + stime from
# /proc), which drifts far less than throughput on a shared machine. It
# prints what wrk's TLS library (OpenSSL) negotiates with each server.
#
#   deploy/bench/tls.sh [ROUNDS] [SECONDS] [IDLE_CONNECTIONS]
#
# Needs wrk, openssl and nginx (apt-get install -y wrk nginx-light).
# WORKERS sets the processes per server (default 2). BASE=REV adds an
# earlier build of clusterd (any git revision) to the rounds. Servers
# listen on 127.0.0.1 and are stopped by pid when the script ends.
set -euo pipefail
rounds=${1:-3} secs=${2:-5} idle=${3:-1000}
. "$(dirname "$0")/lib.sh"
need_wrk
ulimit -n 20000 2>/dev/null || true

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

start_clusterd 8181 --tls-listen 127.0.0.1:8443 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --idle-timeout 60s
waitup_tls() {
	for _ in $(seq 100); do curl -fsS -o /dev/null --cacert "$tmp/cert.pem" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "$1 does not answer" >&2
	return 1
}
waitup_tls https://127.0.0.1:8443/
declare -A url pid
url[clusterd]=https://127.0.0.1:8443/ pid[clusterd]=$cpid
if command -v nginx >/dev/null; then
	mkdir -p "$tmp/nginx"
	sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|8444|" -e "s|@DIR@|$tmp/nginx|g" \
		-e "s|@CERT@|$tmp/cert.pem|" -e "s|@KEY@|$tmp/key.pem|" "$here/nginx-tls.conf" >"$tmp/nginx/nginx.conf"
	nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	npid=$!
	pids+=("$npid")
	waitup_tls https://127.0.0.1:8444/
	url[nginx]=https://127.0.0.1:8444/ pid[nginx]=$npid
fi
names=(clusterd)
[ -n "${url[nginx]:-}" ] && names+=(nginx)
if [ -n "${BASE:-}" ]; then
	mkdir -p "$tmp/base"
	git -C "$root" archive "$BASE" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && go build -o "$tmp/clusterd-base" ./cmd/clusterd)
	"$tmp/clusterd-base" --listen 127.0.0.1:8182 --workers "$workers" --control "$tmp/base.sock" --log-level warn \
		--tls-listen 127.0.0.1:8445 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --idle-timeout 60s &
	pid[base]=$!
	pids+=("${pid[base]}")
	waitup_tls https://127.0.0.1:8445/
	url[base]=https://127.0.0.1:8445/
	names+=(base)
fi

for n in "${names[@]}"; do
	addr=${url[$n]#https://}
	printf 'negotiated with %-9s %s\n' "$n" "$(openssl s_client -connect "${addr%/}" </dev/null 2>/dev/null |
		awk '/^New,/ {sub(/,$/, "", $2); p=$2 " " $5} /Server Temp Key/ {k=$4} END {print p ", " k}' | tr -d ,)"
done

hz=$(getconf CLK_TCK)

# bench LABEL WRK-ARGS…: interleaved rounds, then medians and ratios of
# req/s and of the workers' CPU time per request.
bench() {
	local label=$1 round n t0 t1 out rps reqs us b bc m mc
	shift
	declare -A all=() cpu=()
	echo "$label: ${runner:-wrk} $*, $rounds rounds of ${secs}s, $workers workers each, $(nproc) CPUs"
	for round in $(seq "$rounds"); do
		for n in "${names[@]}"; do
			t0=$(worker_ticks "${pid[$n]}")
			if [ -n "${runner:-}" ]; then
				out=$("$runner" "$@" "${url[$n]}")
			else
				out=$(wrk "$@" -d"${secs}s" "${url[$n]}")
			fi
			t1=$(worker_ticks "${pid[$n]}")
			rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
			reqs=$(awk '/requests in/ {print $1}' <<<"$out")
			us=$(awk -v t=$((t1 - t0)) -v n="$reqs" -v hz="$hz" 'BEGIN {print t * 1e6 / hz / n}')
			printf '  round %d  %-9s %8.0f req/s %7.1f us CPU/req  %s\n' "$round" "$n" "$rps" "$us" \
				"$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')"
			all[$n]+="$rps " cpu[$n]+="$us "
		done
	done
	printf '  %-9s %12s %12s %14s %12s\n' server "median req/s" "clusterd/x" "us CPU/req" "x/clusterd"
	b=$(median <<<"${all[clusterd]}") bc=$(median <<<"${cpu[clusterd]}")
	for n in "${names[@]}"; do
		m=$(median <<<"${all[$n]}") mc=$(median <<<"${cpu[$n]}")
		printf '  %-9s %12.0f %12.2f %14.1f %12.2f\n' "$n" "$m" "$(awk -v a="$b" -v b="$m" 'BEGIN {print a/b}')" \
			"$mc" "$(awk -v a="$mc" -v b="$bc" 'BEGIN {print a/b}')"
	done
}

# s_time_rps ARGS… URL: full handshakes per second of 8 openssl s_time
# clients (no session reuse) run side by side for $secs.
s_time_rps() {
	local addr=${!##https://} i
	addr=${addr%/}
	for i in $(seq 8); do
		openssl s_time -connect "$addr" -new -time "$secs" 2>/dev/null | awk '/real seconds/ {print $1}' &
	done | awk -v s="$secs" '{n += $1} END {print "Requests/sec:", n / s; print n, "requests in"}'
}

bench "keep-alive" -t1 -c64
bench "new connections (wrk resumes each TLS session: PSK with X25519)" -t1 -c32 -H "Connection: close"
runner=s_time_rps bench "full handshakes (8 openssl s_time -new, no resumption)"

echo "memory per idle TLS connection ($idle connections, one request each):"
for n in "${names[@]}"; do
	addr=${url[$n]#https://}
	read -r before after <<<"$(idle_rss "${pid[$n]}" "$idle" -tls -addr "${addr%/}")"
	printf '  %-9s %8d kB before %8d kB after: %6.0f bytes each\n' "$n" "$before" "$after" \
		"$(awk -v a="$after" -v b="$before" -v n="$idle" 'BEGIN {print (a-b)*1024/n}')"
done
