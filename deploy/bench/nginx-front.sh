#!/usr/bin/env bash
# nginx in front of clusterd: wrk keep-alive load against nginx, which
# proxies with upstream keep-alive to clusterd, while clusterd rolls its
# workers twice (clusterd ctl reload). Run once over the Unix socket of
# deploy/nginx/clusterd-unix.conf and once over TCP, in one run.
#
#   deploy/bench/nginx-front.sh [CONNECTIONS] [SECONDS] [ROUNDS]
#
# Each round measures both upstreams, the order alternating between rounds.
# Needs wrk and nginx. Servers listen on 127.0.0.1 and are stopped by pid
# when the script ends.
set -euo pipefail
conns=${1:-64} secs=${2:-10} rounds=${3:-2}
. "$(dirname "$0")/lib.sh"
need_wrk
command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install -y nginx-light)" >&2; exit 1; }

sock=$tmp/app.sock
go build -o "$tmp/clusterd" "$root/cmd/clusterd"
"$tmp/clusterd" --listen "unix:$sock" --listen 127.0.0.1:8186 --workers "$workers" \
	--control "$tmp/ctl.sock" --log-level warn &
pids+=($!)
waitup http://127.0.0.1:8186/
ctl() { "$tmp/clusterd" ctl --control "$tmp/ctl.sock" "$@"; }

# front UPSTREAM PORT: nginx on 127.0.0.1:PORT with the deploy config,
# its upstream server replaced by UPSTREAM.
front() {
	local upstream=$1 port=$2 dir=$tmp/nginx-$2
	mkdir -p "$dir"
	sed -e "s|server unix:/run/clusterd/app.sock;|server $upstream;|" -e "s|listen 80;|listen 127.0.0.1:$port;|" \
		"$root/deploy/nginx/clusterd-unix.conf" >"$dir/front.conf"
	grep -q "server $upstream;" "$dir/front.conf" && grep -q "listen 127.0.0.1:$port;" "$dir/front.conf" ||
		{ echo "deploy/nginx/clusterd-unix.conf: upstream or listen line not found" >&2; exit 1; }
	# Started as root, nginx runs its workers as nobody, who may not connect
	# to the socket (mode 0660, this user's): keep them this user here.
	local user=""
	[ "$(id -u)" != 0 ] || user="user root root;"
	cat >"$dir/nginx.conf" <<CONF
$user
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    include $dir/front.conf;
}
CONF
	nginx -c "$dir/nginx.conf" -e "$dir/error.log" &
	pids+=($!)
	waitup "http://127.0.0.1:$port/" || { cat "$dir/error.log" >&2; exit 1; }
}

# measure NAME PORT: wrk for $secs against nginx, ctl reload at 1/3 and 2/3.
measure() {
	wrk_twice "$1" "http://127.0.0.1:$2/" 'ctl reload >/dev/null'
	printf '%-14s %10s requests %10s req/s %6s socket errors %6s non-2xx\n' "$1" "${load[@]}"
}

echo "wrk -t2 -c$conns -d${secs}s against nginx, two clusterd reloads each, $workers workers each"
front "unix:$sock" 8187
front 127.0.0.1:8186 8188
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		measure unix-upstream 8187; measure tcp-upstream 8188
	else
		measure tcp-upstream 8188; measure unix-upstream 8187
	fi
done
echo "clusterd generation after the runs: $(ctl status --json | awk -F'[:,]' '/"generation"/ {print $2; exit}')"
for d in "$tmp"/nginx-*; do
	if [ -s "$d/error.log" ]; then echo "nginx errors ($d):"; tail -n 5 "$d/error.log"; fi
done
