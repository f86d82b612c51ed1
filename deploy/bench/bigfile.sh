#!/usr/bin/env bash
# A large file, in the clear and over HTTPS: clusterd (--root, --tls-listen)
# beside nginx (nginx-bigfile.conf: sendfile on, the TLS settings of
# nginx-tls.conf), the same 100 MB file (random bytes, in the page cache),
# the same self-signed ECDSA P-256 certificate, WORKERS processes each.
# Each download is one `curl -s --http1.1 -o /dev/null` on a new
# connection; the four (clusterd http, clusterd https, nginx http, nginx
# https) are interleaved in ROUNDS rounds. H2=1 adds a download over HTTP/2
# (ALPN h2, curl's default for HTTPS) from each server: clusterd then sends
# the file through its HTTP/2 forwarder, not the loop's TLS codec. For
# each download it reports the seconds curl took, the workers' CPU time
# (utime + stime from /proc/PID/stat, summed over the server's worker
# processes, in clock ticks of 10 ms; and, finer, the time on CPU of all
# their threads from /proc/PID/task/*/schedstat) and their peak memory
# (the sum of the workers' VmHWM, reset before each download through
# clear_refs, or VmRSS sampled every 20 ms where clear_refs cannot be
# written); then the medians, the ratio of HTTPS to plain HTTP CPU time for
# each server and of clusterd's to nginx's for each protocol.
#
# In the clear both servers send the file with sendfile(2): the kernel
# copies page cache to the socket. Over HTTPS each reads the file and
# encrypts it in user space (clusterd: crypto/tls, about 15 KB at a time;
# nginx: OpenSSL), because sendfile cannot encrypt. kernel TLS (kTLS) would
# move the record encryption into the kernel and let sendfile work over
# TLS again, where the kernel offers the `tls` upper-layer protocol
# (CONFIG_TLS; listed in /proc/sys/net/ipv4/tcp_available_ulp once loaded).
# The kernel this was measured on does not: tcp_available_ulp lists only
# mptcp, its config has "# CONFIG_TLS is not set" and "# CONFIG_MODULES
# is not set" (nothing to modprobe), and setsockopt(TCP_ULP, "tls") fails
# with ENOENT, as for an unknown name. The script prints the
# same evidence for the machine it runs on.
#
#   deploy/bench/bigfile.sh [ROUNDS] [MEGABYTES]
#   H2=1 deploy/bench/bigfile.sh [ROUNDS] [MEGABYTES]
#
# Needs curl, openssl and nginx (apt-get install -y nginx-light; without
# it only clusterd is measured). WORKERS sets the processes per server
# (default 2). Servers listen on 127.0.0.1 and are stopped by pid when the
# script ends; every download is bounded by curl --max-time.
set -euo pipefail
rounds=${1:-5} mb=${2:-100}
. "$(dirname "$0")/lib.sh"

echo "kTLS on this kernel ($(uname -r)):"
echo "  /proc/sys/net/ipv4/tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>&1)"
if [ -r /proc/config.gz ]; then
	echo "  /proc/config.gz: $(zcat /proc/config.gz | grep -E '^(# )?CONFIG_(TLS|MODULES)( |=)' | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
fi
if command -v modprobe >/dev/null; then
	echo "  modprobe -n -v tls (a dry run): $(modprobe -n -v tls 2>&1 | tr '\n' ' ')"
else
	echo "  modprobe: not installed"
fi
if command -v python3 >/dev/null; then
	echo "  $(python3 -c '
import errno, socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
s = socket.create_connection(l.getsockname())
try:
    s.setsockopt(socket.IPPROTO_TCP, 31, b"tls")  # TCP_ULP
    print("setsockopt(TCP_ULP, \"tls\"): ok")
except OSError as e:
    print("setsockopt(TCP_ULP, \"tls\"): %s (%s)" % (errno.errorcode[e.errno], e.strerror))
')"
fi

# The ports must be free: a server left on one of them would answer in
# place of the one measured.
for port in 8191 8192 8491 8492; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "127.0.0.1:$port is in use" >&2
		exit 1
	fi
done

www=$tmp/www
mkdir -p "$www"
echo ok >"$www/index.html"
head -c $((mb * 1000 * 1000)) /dev/urandom >"$www/big.bin"
size=$(stat -c %s "$www/big.bin")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

waitup_tls() {
	for _ in $(seq 100); do curl -fsS -o /dev/null --cacert "$tmp/cert.pem" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "$1 does not answer" >&2
	return 1
}

declare -A url pid
start_clusterd 8191 --root "$www" --tls-listen 127.0.0.1:8491 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
waitup_tls https://127.0.0.1:8491/
url[clusterd-http]=http://127.0.0.1:8191/big.bin url[clusterd-https]=https://127.0.0.1:8491/big.bin
pid[clusterd-http]=$cpid pid[clusterd-https]=$cpid
names=(clusterd-http clusterd-https)
if [ -n "${H2:-}" ]; then
	url[clusterd-h2]=${url[clusterd-https]} pid[clusterd-h2]=$cpid
	names+=(clusterd-h2)
fi
if command -v nginx >/dev/null; then
	mkdir -p "$tmp/nginx"
	# Started as root, nginx would run its workers as nobody, who may not
	# read the scratch directory (mode 0700): keep them this user.
	user=""
	[ "$(id -u)" != 0 ] || user="user root root;"
	sed -e "s|@USER@|$user|" -e "s|@WORKERS@|$workers|" -e "s|@PORT@|8192|" -e "s|@TLSPORT@|8492|" \
		-e "s|@DIR@|$tmp/nginx|g" -e "s|@ROOT@|$www|g" -e "s|@CERT@|$tmp/cert.pem|" -e "s|@KEY@|$tmp/key.pem|" \
		"$here/nginx-bigfile.conf" >"$tmp/nginx/nginx.conf"
	nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	npid=$!
	pids+=("$npid")
	waitup http://127.0.0.1:8192/
	waitup_tls https://127.0.0.1:8492/
	url[nginx-http]=http://127.0.0.1:8192/big.bin url[nginx-https]=https://127.0.0.1:8492/big.bin
	pid[nginx-http]=$npid pid[nginx-https]=$npid
	names+=(nginx-http nginx-https)
	if [ -n "${H2:-}" ]; then
		url[nginx-h2]=${url[nginx-https]} pid[nginx-h2]=$npid
		names+=(nginx-h2)
	fi
fi

# curl_for NAME: curl with the protocol for NAME, bounded in time.
curl_for() {
	local proto=--http1.1
	[ "${1##*-}" != h2 ] || proto=--http2
	echo curl -s --max-time 60 --cacert "$tmp/cert.pem" "$proto"
}

# Each body checked byte for byte once (this also warms the page cache);
# what curl (OpenSSL) negotiates with each HTTPS server.
for n in "${names[@]}"; do
	$(curl_for "$n") "${url[$n]}" | cmp -s - "$www/big.bin" || { echo "$n: the body differs from the file" >&2; exit 1; }
	case $n in *-http) ;; *)
		printf 'curl negotiates with %-15s %s, %s\n' "$n" "$($(curl_for "$n") -v -o /dev/null -r 0-0 "${url[$n]}" 2>&1 |
			sed -n 's/^\* SSL connection using //p')" "$($(curl_for "$n") -o /dev/null -r 0-0 -w 'HTTP/%{http_version}' "${url[$n]}")"
		;;
	esac
done

# workers PID: the worker processes (children) of PID.
workers_of() { cat /proc/"$1"/task/*/children; }

hz=$(getconf CLK_TCK)

# oncpu_us PID: the time on CPU, in microseconds, of the workers' threads.
oncpu_us() {
	local w
	for w in $(workers_of "$1"); do cat /proc/"$w"/task/*/schedstat; done 2>/dev/null | awk '{s += $1} END {printf "%d\n", s / 1000}'
}

# status_kb FIELD PID: the sum of FIELD (VmRSS, VmHWM) over the workers of PID.
status_kb() {
	local sum=0 w
	for w in $(workers_of "$2"); do
		sum=$((sum + $(awk -v f="$1:" '$1 == f {print $2}' "/proc/$w/status")))
	done
	echo "$sum"
}

# reset_hwm PID: resets the workers' peak RSS; fails if the kernel refuses.
reset_hwm() {
	local w
	for w in $(workers_of "$1"); do echo 5 >"/proc/$w/clear_refs" || return 1; done 2>/dev/null
}

# download NAME: one download of url[NAME]; prints "SECONDS CPU-MS
# ONCPU-MS PEAK-KB RSS-BEFORE-KB".
download() {
	local n=$1 p=${pid[$1]} t0 t1 u0 u1 before peak out code got secs sampler=""
	before=$(status_kb VmRSS "$p")
	if ! reset_hwm "$p"; then
		(
			m=0
			while :; do
				r=$(status_kb VmRSS "$p")
				[ "$r" -le "$m" ] || { m=$r; echo "$m" >"$tmp/peak"; }
				sleep 0.02
			done
		) &
		sampler=$!
	fi
	t0=$(worker_ticks "$p") u0=$(oncpu_us "$p")
	out=$($(curl_for "$n") -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "${url[$n]}")
	t1=$(worker_ticks "$p") u1=$(oncpu_us "$p")
	read -r code got secs <<<"$out"
	if [ -n "$sampler" ]; then
		kill "$sampler"
		wait "$sampler" 2>/dev/null || true
		peak=$(cat "$tmp/peak")
	else
		peak=$(status_kb VmHWM "$p")
	fi
	[ "$code" = 200 ] && [ "$got" = "$size" ] || { echo "$n: status $code, $got of $size bytes" >&2; exit 1; }
	echo "$secs $(((t1 - t0) * 1000 / hz)) $(awk -v u=$((u1 - u0)) 'BEGIN {print u / 1000}') $peak $before"
}

printf '\n%d MB file, %d rounds, %d workers per server, %d CPUs; each line one download\n' "$mb" "$rounds" "$workers" "$(nproc)"
printf '  %-5s %-15s %8s %8s %8s %10s %12s %14s\n' round server seconds MB/s "CPU ms" "on-CPU ms" "peak RSS KB" "RSS before KB"
declare -A secs cpu oncpu peak grow
for round in $(seq "$rounds"); do
	for n in "${names[@]}"; do
		line=$(download "$n")
		read -r s c o k b <<<"$line"
		printf '  %-5d %-15s %8.3f %8.0f %8d %10.1f %12d %14d\n' "$round" "$n" "$s" "$(awk -v s="$s" -v b="$size" 'BEGIN {print b / s / 1e6}')" "$c" "$o" "$k" "$b"
		secs[$n]+="$s " cpu[$n]+="$c " oncpu[$n]+="$o " peak[$n]+="$k " grow[$n]+="$((k - b)) "
	done
done

printf '\nmedians of %d downloads:\n' "$rounds"
printf '  %-15s %8s %8s %8s %10s %12s %17s\n' server seconds MB/s "CPU ms" "on-CPU ms" "peak RSS KB" "peak - before KB"
for n in "${names[@]}"; do
	s=$(median <<<"${secs[$n]}")
	printf '  %-15s %8.3f %8.0f %8.0f %10.1f %12.0f %17.0f\n' "$n" "$s" "$(awk -v s="$s" -v b="$size" 'BEGIN {print b / s / 1e6}')" \
		"$(median <<<"${cpu[$n]}")" "$(median <<<"${oncpu[$n]}")" "$(median <<<"${peak[$n]}")" "$(median <<<"${grow[$n]}")"
done

# ratio A B: the ratios of the medians of A and B: "CPU X (on-CPU Y),
# seconds Z".
ratio() {
	local f out=()
	for f in cpu oncpu secs; do
		local -n v=$f
		out+=("$(awk -v a="$(median <<<"${v[$1]}")" -v b="$(median <<<"${v[$2]}")" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "-"}')")
	done
	echo "CPU ${out[0]} (on-CPU ${out[1]}), seconds ${out[2]}"
}
echo
for srv in clusterd nginx; do
	[ -n "${url[$srv-http]:-}" ] || continue
	printf '  %-9s https/http: %s\n' "$srv" "$(ratio "$srv-https" "$srv-http")"
	[ -z "${url[$srv-h2]:-}" ] || printf '  %-9s h2/http:    %s\n' "$srv" "$(ratio "$srv-h2" "$srv-http")"
done
if [ -n "${url[nginx-http]:-}" ]; then
	for proto in http https h2; do
		[ -n "${url[nginx-$proto]:-}" ] || continue
		printf '  clusterd/nginx %-7s %s\n' "$proto:" "$(ratio "clusterd-$proto" "nginx-$proto")"
	done
fi
