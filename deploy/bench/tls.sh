#!/usr/bin/env bash
# HTTPS: clusterd beside nginx with the same ECDSA P-256 certificate, worker
# count and protocol versions (TLS 1.2 and 1.3; both negotiate 1.3 with wrk),
# interleaved rounds:
#   - keep-alive requests per second (wrk -c64);
#   - full handshakes per second (Connection: close, wrk -c32);
#   - memory per idle TLS connection (N connections, one request each).
#
#   deploy/bench/tls.sh [ROUNDS] [SECONDS] [IDLE_CONNECTIONS]
#
# Needs wrk, openssl and nginx (apt-get install -y wrk nginx-light).
# WORKERS sets the processes per server (default 2). Servers listen on
# 127.0.0.1 and are stopped by pid when the script ends.
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

# bench LABEL WRK-ARGS…: interleaved rounds, then medians and ratios.
bench() {
	local label=$1
	shift
	declare -A all=()
	echo "$label: wrk $*, $rounds rounds, $workers workers each, $(nproc) CPUs"
	indent="  " interleave wrk_rps "$@" -d"${secs}s"
}

bench "keep-alive" -t1 -c64
bench "full handshakes" -t1 -c32 -H "Connection: close"

echo "memory per idle TLS connection ($idle connections, one request each):"
for n in "${names[@]}"; do
	addr=${url[$n]#https://}
	read -r before after <<<"$(idle_rss "${pid[$n]}" "$idle" -tls -addr "${addr%/}")"
	printf '  %-9s %8d kB before %8d kB after: %6.0f bytes each\n' "$n" "$before" "$after" \
		"$(awk -v a="$after" -v b="$before" -v n="$idle" 'BEGIN {print (a-b)*1024/n}')"
done
