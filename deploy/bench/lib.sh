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
