#!/usr/bin/env bash
# What manifest rewriting costs a request (README: Video), on loopback: the
# same HLS media playlist of N segments named by absolute paths (so every
# segment line gets the token inserted) fetched through a path token, from
# a route with `manifests: {}` and from one without. Requests/s and the
# tollgate process's CPU time per request (utime + stime from /proc), the
# median of alternated rounds. Bounded: seconds x rounds x 2 runs.
#
# Usage: benches/manifests.sh [segments (default 1000)] [seconds-per-run (default 5)] [rounds (default 3)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
segments=${1:-1000}
secs=${2:-5}
rounds=${3:-3}
for p in /usr/sbin/nginx wrk python3 curl; do
  command -v "$p" >/dev/null || { echo "bench: $p is missing (tests/setup.sh installs nginx; apt-get install wrk)" >&2; exit 1; }
done
source "$root/benches/lib.sh"
cargo build --release --locked -q
bin=$root/target/release/tollgate

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/tmp"
for row in plain rw; do
  mkdir -p "$work/www/$row/u1/v"
  python3 - "$segments" "$row" > "$work/www/$row/u1/v/index.m3u8" <<'PY'
import sys
n, row = int(sys.argv[1]), sys.argv[2]
print("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0")
for i in range(n):
    print(f"#EXTINF:4.000,\n/{row}/u1/v/seg-{i}.ts")
print("#EXT-X-ENDLIST")
PY
done
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')   # generated per run
printf '%s' "$secret" > "$work/key"
BK=$(port); TG=$(port); TA=$(port)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  types { application/vnd.apple.mpegurl m3u8; }
  client_body_temp_path $work/tmp/b; proxy_temp_path $work/tmp/p; fastcgi_temp_path $work/tmp/f;
  uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BK; root $work/www; }
}
CONF
cat > "$work/tollgate.yaml" <<CONF
listen: 127.0.0.1:$TG
admin: 127.0.0.1:$TA
keys:
  k: { hmac: { secret_file: key } }
upstreams:
  nginx: { url: "http://127.0.0.1:$BK" }
routes:
  - { name: plain, prefix: /plain/, upstream: nginx, auth: { signed_url: { keys: [k], path_tokens: true } } }
  - { name: rw, prefix: /rw/, upstream: nginx, auth: { signed_url: { keys: [k], path_tokens: true } }, manifests: {} }
log: { access_log: false }
reload: { watch: false }
CONF
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
"$bin" serve --config "$work/tollgate.yaml" 2>"$work/tg.log" & pids+=($!); tg=$!
wait_port "$BK"; wait_port "$TG"

target_of() { "$bin" sign --key-file "$work/key" --path-token --prefix "/$1/u1/" --ttl 1h "/$1/u1/v/index.m3u8"; }
declare -A targets
for row in plain rw; do targets[$row]=$(target_of "$row"); done
# Shown to work before timing: the rewritten playlist carries the token, the other does not.
curl -sf "http://127.0.0.1:$TG${targets[rw]}" | grep -q "^/rw/u1/tg~" || { echo "bench: the rw playlist was not rewritten" >&2; exit 1; }
curl -sf "http://127.0.0.1:$TG${targets[plain]}" | grep -q "^/plain/u1/v/seg-0.ts" || { echo "bench: the plain playlist changed" >&2; exit 1; }
bytes=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$TG${targets[plain]}")

run() { # row seconds -> "rps p50 p99 cpu_us"
  local out before after
  before=$(cpu_ticks "$tg")
  out=$(wrk -t1 -c16 -d"$2"s --latency "http://127.0.0.1:$TG${targets[$1]}")
  after=$(cpu_ticks "$tg")
  if grep -q 'Non-2xx' <<<"$out"; then echo "bench: $1 had refusals" >&2; echo "$out" >&2; exit 1; fi
  wrk_summary $((after - before)) <<<"$out"
}
for row in plain rw; do run "$row" 1 >/dev/null; done
declare -A results
for r in $(seq 1 "$rounds"); do
  for row in plain rw; do
    results[$row]+="$(run "$row" "$secs")"$'\n'
    echo "bench: round $r $row: $(tail -n1 <<<"${results[$row]%$'\n'}")" >&2
  done
done
read -r base_rps _ _ base_cpu <<<"$(median <<<"${results[plain]%$'\n'}")"
echo "playlist: $segments segments, $bytes bytes"
printf '| route | requests/s | p50 ms | p99 ms | CPU µs/request | × plain req/s | × plain CPU |\n|---|---:|---:|---:|---:|---:|---:|\n'
for row in plain rw; do
  read -r rps p50 p99 cpu <<<"$(median <<<"${results[$row]%$'\n'}")"
  case $row in plain) name="path token, not rewritten" ;; rw) name="path token, manifests: {} (rewritten)" ;; esac
  awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v c="$cpu" -v R="$base_rps" -v C="$base_cpu" \
    'BEGIN { printf "| %s | %d | %.3f | %.3f | %.1f | %.2f | %.2f |\n", n, r, a, b, c, r / R, c / C }'
done
