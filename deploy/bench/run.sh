#!/usr/bin/env bash
# Throughput of clusterd against its peers, interleaved in one run so that
# they share the machine's conditions; reported as ratios to clusterd.
#
#   deploy/bench/run.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk; uses nginx and node when installed
# (apt-get install -y wrk nginx-light). Every server listens on 127.0.0.1
# and is stopped by pid when the script ends.
set -euo pipefail
rounds=${1:-3} secs=${2:-5} conns=${3:-64}
workers=${WORKERS:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }

declare -A url
go build -o "$tmp/clusterd" "$root/cmd/clusterd"
"$tmp/clusterd" --listen 127.0.0.1:8181 --workers "$workers" --control "$tmp/ctl.sock" --log-level warn &
pids+=($!)
url[clusterd]=http://127.0.0.1:8181/

go build -o "$tmp/nethttp" "$here/nethttp.go"
"$tmp/nethttp" -addr 127.0.0.1:8183 &
pids+=($!)
url[net/http]=http://127.0.0.1:8183/

if command -v nginx >/dev/null; then
	mkdir -p "$tmp/nginx"
	sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|8184|" -e "s|@DIR@|$tmp/nginx|g" "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
	nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
	pids+=($!)
	url[nginx]=http://127.0.0.1:8184/
fi
if command -v node >/dev/null; then
	PORT=8182 WORKERS=$workers node "$here/node-cluster.js" &
	pids+=($!)
	url[node-cluster]=http://127.0.0.1:8182/
fi

names=(clusterd)
for n in nginx node-cluster net/http; do [ -n "${url[$n]:-}" ] && names+=("$n"); done
for n in "${names[@]}"; do
	for i in $(seq 50); do curl -fsS -o /dev/null "${url[$n]}" 2>/dev/null && break; sleep 0.1; done
	curl -fsS -o /dev/null "${url[$n]}" || { echo "$n does not answer" >&2; exit 1; }
done

echo "wrk -t2 -c$conns -d${secs}s, $rounds interleaved rounds, $workers workers each, $(nproc) CPUs"
declare -A all
for r in $(seq "$rounds"); do
	for n in "${names[@]}"; do
		out=$(wrk -t2 -c"$conns" -d"${secs}s" "${url[$n]}")
		rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
		errs=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
		printf 'round %d  %-13s %10.0f req/s %s\n' "$r" "$n" "$rps" "$errs"
		all[$n]+="$rps "
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(median <<<"${all[clusterd]}")
echo
printf '%-13s %12s %10s\n' server "median req/s" "clusterd/x"
for n in "${names[@]}"; do
	m=$(median <<<"${all[$n]}")
	printf '%-13s %12.0f %10.2f\n' "$n" "$m" "$(awk -v a="$base" -v b="$m" 'BEGIN {print a/b}')"
done
