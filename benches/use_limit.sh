#!/usr/bin/env bash
# What a one-time link, and the leaked-link controls, cost over a plain
# signed URL (README: One-time and limited links, Leaked links), on loopback:
#
#   plain signed URL          route without use_limit        -> nginx
#   one-time link, Redis      use_limit {uses: 1}, Redis on this machine -> nginx
#   one-time link, memory     use_limit {uses: 1}, memory store           -> nginx
#   leak controls, Redis      share_limit + stream_limit + byte_quota, Redis -> nginx
#                             (per request: a network recorded, a stream slot
#                             taken and freed, the bytes read and charged)
#
# Next to requests/s: the CPU time of the tollgate process per request
# (utime + stime from /proc over the run), the steadiest figure here.
#
# Every request carries a link never used before (pre-signed with a fresh
# `jti` each, read by a wrk Lua script; the plain row reads an identical
# list so the Lua cost is the same everywhere), so every one-time request
# is a first use: one Lua script on Redis (or one map insert) and a 200.
# Any non-2xx answer fails the run (a list ran out, or a link was refused).
# Same 1 KiB file, `wrk -t1 -c32 --latency`, rounds alternated, median
# round reported. Loopback only, bounded (about 1 minute plus the build).
#
# Usage: benches/use_limit.sh [seconds-per-run (default 5)] [rounds (default 3)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-5}
rounds=${2:-3}
# Links per run: more than the fastest row can use in $secs seconds.
per_run=$((60000 * secs))

for p in /usr/sbin/nginx redis-server wrk python3 curl; do
  command -v "$p" >/dev/null || { echo "bench: $p is missing (tests/setup.sh installs nginx and redis; apt-get install wrk)" >&2; exit 1; }
done
cargo build --release --locked -q
bin=$root/target/release/tollgate

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
source "$root/benches/lib.sh"

chmod 755 "$work"   # nginx workers run as nobody
mkdir -p "$work/www/plain" "$work/www/once" "$work/www/mem" "$work/www/leak" "$work/tmp"
head -c 1024 /dev/urandom > "$work/www/plain/f.bin"
for row in once mem leak; do cp "$work/www/plain/f.bin" "$work/www/$row/f.bin"; done
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')   # 64 hex chars, generated per run
printf '%s' "$secret" > "$work/key"
BK=$(port); RD=$(port); TR=$(port); TRA=$(port); TM=$(port); TMA=$(port)

cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp/b; proxy_temp_path $work/tmp/p; fastcgi_temp_path $work/tmp/f;
  uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BK; root $work/www; }
}
EOF
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
redis-server --bind 127.0.0.1 --port "$RD" --save "" --appendonly no --dir "$work" >/dev/null 2>&1 & pids+=($!)
printf 'redis://127.0.0.1:%s' "$RD" > "$work/redis.url"

tg_config() { # listen admin store
  cat <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
keys:
  k: { hmac: { secret_file: key } }
upstreams:
  nginx: { url: "http://127.0.0.1:$BK" }
store: $3
routes:
  - { name: plain, prefix: /plain/, upstream: nginx, auth: { signed_url: { keys: [k] } } }
  - { name: once, prefix: /once/, upstream: nginx, auth: { signed_url: { keys: [k] }, use_limit: { uses: 1 } } }
  - { name: mem, prefix: /mem/, upstream: nginx, auth: { signed_url: { keys: [k] }, use_limit: { uses: 1 } } }
  - name: leak
    prefix: /leak/
    upstream: nginx
    auth:
      signed_url: { keys: [k] }
      share_limit: { max_networks: 3 }
      stream_limit: { max_streams: 1000 }
      byte_quota: { bytes: 1000GiB }
log: { access_log: false }
reload: { watch: false }
EOF
}
tg_config "$TR" "$TRA" "{ redis: { url_file: redis.url } }" > "$work/redis.yaml"
tg_config "$TM" "$TMA" "{ memory: {} }" > "$work/memory.yaml"
"$bin" serve --config "$work/redis.yaml" 2>"$work/tg-redis.log" & pids+=($!); redis_tg=$!
"$bin" serve --config "$work/memory.yaml" 2>"$work/tg-memory.log" & pids+=($!); memory_tg=$!
for p in $BK $RD $TR $TM; do wait_port "$p"; done

# Link lists: one file per (row, round), plus one for the warm-up.
echo "bench: signing $(( (rounds + 1) * per_run * 4 )) links" >&2
python3 - "$work" "$secret" "$per_run" "$rounds" <<'EOF'
import base64, hashlib, hmac, sys, time
work, secret, n, rounds = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4])
exp = str(int(time.time()) + 3600)
for row in ("plain", "once", "mem", "leak"):
    path = f"/{row}/f.bin"
    for r in range(rounds + 1):
        with open(f"{work}/{row}-{r}.txt", "w") as out:
            for i in range(n):
                jti = f"{row}-{r}-{i}"
                sts = "\n".join(["TOLLGATE-HMAC-SHA256", "GET", exp, "", path, "jti=" + jti])
                sig = base64.urlsafe_b64encode(hmac.new(secret, sts.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
                out.write(f"{path}?jti={jti}&exp={exp}&sig={sig}\n")
EOF

cat > "$work/links.lua" <<'EOF'
-- Each request takes the next line of the file given as the script argument.
local links, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do links[#links + 1] = line end
end
function request()
  i = i + 1
  return wrk.format("GET", links[(i - 1) % #links + 1])
end
EOF

url_of() { case $1 in plain | once | leak) echo "http://127.0.0.1:$TR" ;; mem) echo "http://127.0.0.1:$TM" ;; esac; }
pid_of() { case $1 in mem) echo "$memory_tg" ;; *) echo "$redis_tg" ;; esac; }


# Shown to work before timing: a fresh link passes once, then 410.
for row in once mem; do
  link=$(sed -n 1p "$work/$row-$rounds.txt")
  a=$(curl -s -o /dev/null -w '%{http_code}' "$(url_of $row)$link")
  b=$(curl -s -o /dev/null -w '%{http_code}' "$(url_of $row)$link")
  [ "$a $b" = "200 410" ] || { echo "bench: $row link answered $a then $b (want 200 then 410): $(curl -s "$(url_of $row)$link")" >&2; exit 1; }
done

run() { # row round seconds -> "rps p50_ms p99_ms cpu_us_per_request"
  local out before after
  before=$(cpu_ticks "$(pid_of "$1")")
  out=$(wrk -t1 -c32 -d"$3"s --latency -s "$work/links.lua" "$(url_of "$1")" -- "$work/$1-$2.txt")
  after=$(cpu_ticks "$(pid_of "$1")")
  if grep -q 'Non-2xx' <<<"$out"; then echo "bench: $1 round $2 had refusals:" >&2; echo "$out" >&2; exit 1; fi
  wrk_summary $((after - before)) <<<"$out"
}

# Warm-up (1 s each, on its own list: the last one), then alternated rounds.
for row in plain once mem leak; do run "$row" "$rounds" 1 >/dev/null; done
declare -A results
for r in $(seq 0 $((rounds - 1))); do
  for row in plain once mem leak; do
    results[$row]+="$(run "$row" "$r" "$secs")"$'\n'
    echo "bench: round $r $row: $(tail -n1 <<<"${results[$row]%$'\n'}")" >&2
  done
done

read -r base_rps base_p50 base_p99 base_cpu <<<"$(median <<<"${results[plain]%$'\n'}")"
printf '| setup | requests/s | p50 ms | p99 ms | CPU µs/request | × plain req/s | × plain p50 | × plain p99 | × plain CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for row in plain once mem leak; do
  read -r rps p50 p99 cpu <<<"$(median <<<"${results[$row]%$'\n'}")"
  case $row in
    plain) name="plain signed URL" ;; once) name="one-time link, Redis store" ;;
    mem) name="one-time link, memory store" ;; leak) name="leak controls, Redis store" ;;
  esac
  awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v c="$cpu" -v R="$base_rps" -v A="$base_p50" -v B="$base_p99" -v C="$base_cpu" \
    'BEGIN { printf "| %s | %d | %.3f | %.3f | %.1f | %.2f | %.2f | %.2f | %.2f |\n", n, r, a, b, c, r / R, a / A, b / B, c / C }'
done
