#!/usr/bin/env bash
# Scale benchmark: what a sidecar costs as connections, routes and keys
# grow, tollgate next to nginx and HAProxy in one run. Prints one table:
#
#   idle       memory per idle keep-alive connection (N clients, one 1 KiB
#              request each, then idle): plain HTTP/1.1, HTTP/1.1 over TLS,
#              HTTP/2 over TLS; and the whole RSS with 10,000 idle plain
#              connections. Each figure is a fresh process: RSS after N
#              idle connections minus RSS after one warm-up request, / N.
#              tollgate `workers: 1`, nginx 1 worker (master + worker
#              counted), HAProxy nbthread 1; all three proxy_pass to the
#              same nginx and keep idle upstream connections for reuse.
#   floor      the same, clients connecting one at a time (a proxy then
#              needs one upstream connection), tollgate next to
#              examples/hyper_floor.rs: hyper's HTTP/1.1 server on tokio and
#              mimalloc answering 1 KiB with nginx's nine headers, nothing
#              of tollgate: what the stack itself keeps per connection.
#   lookup     CPU time of the proxy per request (utime + stime over the
#              run / requests answered) and requests/s, wrk -t1 -c32, with
#              1 route and with 100,000 routes, the request matching the
#              route written last: path prefixes (/t<i>/) and host routes
#              (t<i>.example); `auth: none`, `workers: 1`. Rounds alternate
#              the four tables; the median round is reported.
#   metrics    /metrics with 10,000 routes: bytes and lines before any
#              request and after 1,000 different routes were used; RSS
#              before the first scrape and after ten.
#   routes     memory per route (RSS with 100,000 routes minus RSS with
#              one, / 100,000; no metric series exist before a request),
#              `tollgate check` and reload time of that file (reload: from
#              the SIGHUP to the swap, in tollgate's log) with wrk loading
#              the running table meanwhile (every answer must be a 200).
#   keys       one signature check with 1 key and with 1,000 (kid chosen),
#              HMAC signed URL and a JWK set (criterion, benches/micro.rs
#              `keys/`).
#
# Loopback only, bounded (about 8 minutes with the defaults, plus the
# criterion build the first time).
#
# Usage: benches/scale.sh [seconds-per-run (default 5)] [rounds (default 3)] [idle clients (default 3000)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-5}
rounds=${2:-3}
idle=${3:-3000}

source "$root/benches/lib.sh"
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
apt_install ${need[@]+"${need[@]}"}
cargo build --release --locked -q
cargo build --release --locked -q --example hyper_floor
cargo bench --bench micro --no-run -q 2>/dev/null   # built before anything is measured
bin=$root/target/release/tollgate
# 10,000 connections need as many descriptors in the client and in the proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 10500 ] || { echo "scale: needs 10,500 open files per process (ulimit -n is $(ulimit -n))" >&2; exit 1; }
# HAProxy reserves two descriptors per connection (client and server side):
# under a 20,000 limit it holds 9,950, so the "10,000 idle" row then opens
# as many as all three can hold, and says so.
ha_maxconn=$(( ($(ulimit -n) - 100) / 2 )); [ "$ha_maxconn" -le 30000 ] || ha_maxconn=30000
many=$(( ha_maxconn - 50 )); [ "$many" -le 10000 ] || many=10000

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# RSS in KiB of a process and its children (nginx's worker).
rss() {
  local all=("$1") p
  all+=($(pgrep -P "$1" || true))
  for p in "${all[@]}"; do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done | awk '{t += $1} END {print t}'
}
clk=$(getconf CLK_TCK)
cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk -v c="$clk" '{printf "%.4f\n", ($12 + $13) / c}'; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
calc() { python3 -c "print($1)"; }

chmod 755 "$work"
mkdir -p "$work/www" "$work/keys"
head -c 1024 /dev/urandom > "$work/www/file.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
cat "$work/tls.crt" "$work/tls.key" > "$work/tls.pem"

# The origin: nginx answers every path with the same 1 KiB file.
BK=$(port)
cat > "$work/origin.conf" <<EOF
worker_processes 1;
pid $work/origin.pid;
error_log $work/origin-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/o/b; proxy_temp_path $work/o/p; fastcgi_temp_path $work/o/f;
  uwsgi_temp_path $work/o/u; scgi_temp_path $work/o/s;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BK; root $work/www; location / { try_files /file.bin =404; } }
}
EOF
mkdir -p "$work/o"
/usr/sbin/nginx -p "$work" -c "$work/origin.conf" -g 'daemon off;' & pids+=($!)
wait_port "$BK"

# --- idle connections -------------------------------------------------------
start_proxy() { # kind mode plain-port tls-port admin-port: sets PROXY_PID
  local kind=$1 mode=$2 p=$3 t=$4 a=$5
  case $kind in
    tollgate)
      # One listener: TLS (HTTP/1.1 and HTTP/2 by ALPN) when the mode is.
      {
        echo "listen: 127.0.0.1:$p"
        echo "admin: 127.0.0.1:$a"
        echo "workers: 1"
        echo "upstreams: { origin: { url: \"http://127.0.0.1:$BK\" } }"
        echo "routes: [ { name: f, prefix: /, upstream: origin, auth: none } ]"
        echo "limits: { max_connections: 30000, idle_timeout: 300s }"
        echo "log: { access_log: false }"
        echo "reload: { watch: false }"
        [ "$mode" = h1 ] || echo "tls: { cert_file: $work/tls.crt, key_file: $work/tls.key }"
      } > "$work/tg-idle.yaml"
      "$bin" serve --config "$work/tg-idle.yaml" >/dev/null 2>>"$work/tollgate.log" & PROXY_PID=$! ;;
    nginx)
      mkdir -p "$work/n"
      cat > "$work/nginx-idle.conf" <<EOF
worker_processes 1;
pid $work/nginx-idle.pid;
error_log $work/nginx-idle-error.log warn;
events { worker_connections $(( $(ulimit -n) - 500 )); }
http {
  access_log off;
  client_body_temp_path $work/n/b; proxy_temp_path $work/n/p; fastcgi_temp_path $work/n/f;
  uwsgi_temp_path $work/n/u; scgi_temp_path $work/n/s;
  keepalive_timeout 300s; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$BK; keepalive 256; }
  ssl_certificate $work/tls.crt; ssl_certificate_key $work/tls.key;
  server {
    listen 127.0.0.1:$p; listen 127.0.0.1:$t ssl http2;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
      /usr/sbin/nginx -p "$work" -c "$work/nginx-idle.conf" -g 'daemon off;' >/dev/null & PROXY_PID=$! ;;
    haproxy)
      cat > "$work/haproxy-idle.cfg" <<EOF
global
  maxconn $ha_maxconn
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 30s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:$p
  bind 127.0.0.1:$t ssl crt $work/tls.pem alpn h2,http/1.1
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$BK
EOF
      /usr/sbin/haproxy -q -f "$work/haproxy-idle.cfg" >/dev/null & PROXY_PID=$! ;;
    floor)
      "$root/target/release/examples/hyper_floor" "$p" headers >/dev/null 2>&1 & PROXY_PID=$! ;;
  esac
  pids+=("$PROXY_PID")
}

# kind mode clients [client flag]: sets IDLE_PER (KB of RSS per idle connection) and
# IDLE_TOTAL (MiB of RSS with them open).
idle_row() {
  local kind=$1 mode=$2 n=$3 P T A flags=() url base after
  [ -z "${4:-}" ] || flags+=("$4")
  P=$(port); T=$(port); A=$(port)
  start_proxy "$kind" "$mode" "$P" "$T" "$A"
  local pid=$PROXY_PID
  wait_port "$P"
  url=$P
  case $mode in
    tls) flags+=(--tls) ;;
    h2) flags+=(--tls --h2) ;;
  esac
  if [ "$kind" != tollgate ] && [ "$kind" != floor ] && [ "$mode" != h1 ]; then wait_port "$T"; url=$T; fi
  # One request first: pools, TLS contexts and lazily built state exist
  # before the baseline.
  python3 benches/idle_clients.py 127.0.0.1 "$url" 1 /file.bin "${flags[@]}" </dev/null >/dev/null
  sleep 0.5
  base=$(rss "$pid")
  rm -f "$work/fifo"; mkfifo "$work/fifo"
  python3 benches/idle_clients.py 127.0.0.1 "$url" "$n" /file.bin "${flags[@]}" <"$work/fifo" >"$work/clients.out" &
  local client=$!
  exec 7>"$work/fifo"
  for _ in $(seq 900); do grep -q '^ready' "$work/clients.out" && break; sleep 0.1; done
  grep -q "^ready $n\$" "$work/clients.out" || { echo "scale: $kind $mode: clients not ready" >&2; cat "$work/clients.out" >&2; exit 1; }
  sleep 1
  after=$(rss "$pid")
  echo >&7; exec 7>&-
  wait "$client" || true
  stop "$pid"
  IDLE_PER=$(calc "round(($after - $base) * 1.024 / $n, 2)")
  IDLE_TOTAL=$(calc "round($after / 1024, 1)")
}

declare -A idle_kb total_mb
for mode in h1 tls h2; do
  for kind in tollgate nginx haproxy; do
    idle_row "$kind" "$mode" "$idle"
    idle_kb[$kind.$mode]=$IDLE_PER
    echo "scale: idle $mode $kind: $IDLE_PER KB per connection" >&2
  done
done
for kind in tollgate nginx haproxy; do
  idle_row "$kind" h1 "$many"
  total_mb[$kind]=$IDLE_TOTAL
  echo "scale: $many idle $kind: $IDLE_TOTAL MiB" >&2
done

declare -A floor_kb
for kind in tollgate floor; do
  idle_row "$kind" h1 "$idle" --one-at-a-time
  floor_kb[$kind]=$IDLE_PER
  echo "scale: idle h1 one at a time $kind: $IDLE_PER KB per connection" >&2
done

# --- route lookup -----------------------------------------------------------
declare -A tg_pid tg_admin tg_target tg_host
start_table() { # name count mode
  local P A pid
  P=$(port); A=$(port)
  python3 benches/routes.py "$2" "$3" "127.0.0.1:$P" "127.0.0.1:$A" "http://127.0.0.1:$BK" > "$work/$1.yaml"
  "$bin" serve --config "$work/$1.yaml" >/dev/null 2>"$work/$1.log" & pid=$!; pids+=($pid)
  wait_port "$P"; wait_port "$A"
  tg_pid[$1]=$pid; tg_admin[$1]=$A
  local last=$(($2 - 1))
  if [ "$3" = host ]; then tg_target[$1]="http://127.0.0.1:$P/file.bin"; tg_host[$1]="t$last.example"
  else tg_target[$1]="http://127.0.0.1:$P/t$last/file.bin"; tg_host[$1]="x"; fi
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${tg_host[$1]}" "${tg_target[$1]}")
  [ "$code" = 200 ] || { echo "scale: $1: the last route answered $code" >&2; exit 1; }
}
start_table prefix-1 1 prefix
start_table prefix-100k 100000 prefix
start_table host-1 1 host
start_table host-100k 100000 host
tables=(prefix-1 prefix-100k host-1 host-100k)

run_table() { # name seconds -> "rps cpu_us_per_request"
  local t=$1 before after out n rps
  before=$(cpu "${tg_pid[$t]}")
  out=$(wrk -t1 -c32 -d"$2s" -H "Host: ${tg_host[$t]}" "${tg_target[$t]}")
  after=$(cpu "${tg_pid[$t]}")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then echo "scale: $t: errors" >&2; echo "$out" >&2; exit 1; fi
  echo "$rps $(calc "round(($after - $before) * 1e6 / $n, 2)")"
}
for t in "${tables[@]}"; do run_table "$t" 1 >/dev/null; done
: > "$work/lookup"
for r in $(seq "$rounds"); do
  for t in "${tables[@]}"; do
    res=$(run_table "$t" "$secs"); echo "$t $res" >> "$work/lookup"
    echo "scale: round $r $t: $res" >&2
  done
done
for t in "${tables[@]}"; do stop "${tg_pid[$t]}"; done

# --- metrics with 10,000 routes ---------------------------------------------
start_table metrics-10k 10000 prefix
M=${tg_pid[metrics-10k]}; MA=${tg_admin[metrics-10k]}
m_rss0=$(rss "$M")
curl -s "http://127.0.0.1:$MA/metrics" > "$work/m0"
for _ in $(seq 9); do curl -s -o /dev/null "http://127.0.0.1:$MA/metrics"; done
m_rss1=$(rss "$M")
python3 - "${tg_target[metrics-10k]}" <<'EOF'
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
for i in range(0, 10000, 10):
    c.request("GET", f"/t{i}/file.bin")
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
EOF
curl -s "http://127.0.0.1:$MA/metrics" > "$work/m1"
for _ in $(seq 9); do curl -s -o /dev/null "http://127.0.0.1:$MA/metrics"; done
m_rss2=$(rss "$M")
m_labels=$(grep -o 'route="[^"]*"' "$work/m1" | sort -u | wc -l)
stop "$M"

# --- memory per route, check and reload --------------------------------------
declare -A route_rss
for t in prefix-1 prefix-100k host-100k; do
  case $t in prefix-1) n=1 m=prefix ;; prefix-100k) n=100000 m=prefix ;; host-100k) n=100000 m=host ;; esac
  start_table "$t" "$n" "$m"
  sleep 0.5
  route_rss[$t]=$(rss "${tg_pid[$t]}")
  [ "$t" = prefix-100k ] || stop "${tg_pid[$t]}"
done
# 100,000 routes each verifying signed URLs with a key of its own.
python3 - "$work/keys" <<'EOF'
import os, sys
for i in range(100000):
    with open(os.path.join(sys.argv[1], f"k{i}"), "w") as f:
        f.write(os.urandom(32).hex())
EOF
K=$(port); KA=$(port)
KEYDIR="$work/keys" python3 benches/routes.py 100000 prefix "127.0.0.1:$K" "127.0.0.1:$KA" "http://127.0.0.1:$BK" --keyed > "$work/keyed.yaml"
"$bin" serve --config "$work/keyed.yaml" 2>"$work/keyed.log" & kp=$!; pids+=($kp)
wait_port "$K"; sleep 0.5
route_rss[keyed]=$(rss "$kp")
stop "$kp"

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); calc "round($e - $s, 2)"; }
check_prefix=$(seconds "$bin" check --config "$work/prefix-100k.yaml")
check_host=$(seconds "$bin" check --config "$work/host-100k.yaml")
check_keyed=$(seconds "$bin" check --config "$work/keyed.yaml")

# Reload under load: wrk keeps asking the running table for the last route
# while the whole file is compiled again and swapped in.
R=${tg_pid[prefix-100k]}
rss_before_reload=$(rss "$R")
wrk -t1 -c8 -d4s --latency "${tg_target[prefix-100k]}" > "$work/reload-wrk" &
wrk_pid=$!
sleep 1
kill -HUP "$R"
wait "$wrk_pid"
for _ in $(seq 100); do grep -q 'Configuration reloaded' "$work/prefix-100k.log" && break; sleep 0.1; done
reload_s=$(python3 - "$work/prefix-100k.log" <<'EOF'
import datetime, re, sys
t = {}
for line in open(sys.argv[1]):
    for key in ("SIGHUP: reloading", "Configuration reloaded"):
        if key in line:
            t[key] = datetime.datetime.fromisoformat(re.match(r"(\S+?)Z?\s", line).group(1))
print(round((t["Configuration reloaded"] - t["SIGHUP: reloading"]).total_seconds(), 2))
EOF
)
rss_after_reload=$(rss "$R")
if grep -q 'Non-2xx\|Socket errors' "$work/reload-wrk"; then echo "scale: answers other than 200 during the reload" >&2; cat "$work/reload-wrk" >&2; exit 1; fi
reload_max=$(awk '/Latency/ && !/Distribution/ {print $4; exit}' "$work/reload-wrk")
reload_n=$(awk '/requests in/ {print $1}' "$work/reload-wrk")
stop "$R"

# --- keys --------------------------------------------------------------------
cargo bench --bench micro -q -- keys/ --warm-up-time 1 --measurement-time 3 >"$work/keys.out" 2>&1 \
  || { cat "$work/keys.out" >&2; exit 1; }
key_ns() { python3 -c "import json; print(round(json.load(open('target/criterion/keys/$1/new/estimates.json'))['median']['point_estimate']))"; }

# --- the table -----------------------------------------------------------------
python3 - "$work/lookup" <<EOF
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, rps, cpu = line.split()
    rows.setdefault(t, []).append((float(cpu), float(rps)))
med = {t: sorted(v)[len(v) // 2] for t, v in rows.items()}

def kb(x): return f"{float(x):.1f} KB"
print("## Scale (benches/scale.sh $secs $rounds $idle)\n")
print("| row | tollgate | nginx (proxy_pass) | HAProxy | tollgate / nginx | tollgate / HAProxy |")
print("|---|---:|---:|---:|---:|---:|")
for mode, name in (("h1", "HTTP/1.1"), ("tls", "HTTP/1.1 over TLS"), ("h2", "HTTP/2 over TLS")):
    t, n, h = {"h1": ("${idle_kb[tollgate.h1]}", "${idle_kb[nginx.h1]}", "${idle_kb[haproxy.h1]}"),
               "tls": ("${idle_kb[tollgate.tls]}", "${idle_kb[nginx.tls]}", "${idle_kb[haproxy.tls]}"),
               "h2": ("${idle_kb[tollgate.h2]}", "${idle_kb[nginx.h2]}", "${idle_kb[haproxy.h2]}")}[mode]
    r = lambda a, b: f"{float(a) / float(b):.1f}x" if float(b) > 0 else "-"
    print(f"| memory per idle connection, {name} ($idle clients) | {kb(t)} | {kb(n)} | {kb(h)} | {r(t, n)} | {r(t, h)} |")
t, n, h = "${total_mb[tollgate]}", "${total_mb[nginx]}", "${total_mb[haproxy]}"
print(f"| RSS with {$many:,} idle HTTP/1.1 connections | {t} MiB | {n} MiB | {h} MiB | {float(t)/float(n):.1f}x | {float(t)/float(h):.1f}x |")
print()
t, f = "${floor_kb[tollgate]}", "${floor_kb[floor]}"
print("| HTTP/1.1, $idle clients connecting one at a time | memory per idle connection |")
print("|---|---:|")
print(f"| tollgate | {kb(t)} |")
print(f"| the stack's floor: hyper's HTTP/1.1 server, tokio, mimalloc, nginx's nine headers (examples/hyper_floor.rs) | {kb(f)} |")
print(f"| tollgate / floor | {float(t) / float(f):.2f}x |")
print()
print("| route lookup (auth: none, workers: 1, wrk -t1 -c32, median of $rounds) | req/s | CPU per request | vs 1 route |")
print("|---|---:|---:|---:|")
for kind in ("prefix", "host"):
    base = med[f"{kind}-1"][0]
    for t in (f"{kind}-1", f"{kind}-100k"):
        cpu, rps = med[t]
        count = "1 route" if t.endswith("-1") else "100,000 routes"
        what = "path prefixes" if kind == "prefix" else "host routes"
        print(f"| {what}, {count} | {rps:,.0f} | {cpu:.1f} µs | {cpu / base:.2f}x |")
print()
print("| /metrics with 10,000 routes | |")
print("|---|---:|")
m0, m1 = open("$work/m0", "rb").read(), open("$work/m1", "rb").read()
l0, l1 = m0.count(b"\\n"), m1.count(b"\\n")
print(f"| before any request | {len(m0):,} bytes, {l0:,} lines |")
print(f"| after 1,000 different routes were used | {len(m1):,} bytes, {l1:,} lines, $m_labels route labels |")
print(f"| RSS before the first scrape → after ten → after 1,000 routes and ten more | {$m_rss0/1024:.1f} → {$m_rss1/1024:.1f} → {$m_rss2/1024:.1f} MiB |")
print()
one = ${route_rss[prefix-1]}
print("| 100,000 routes | |")
print("|---|---:|")
print(f"| memory per route, path prefixes (RSS {${route_rss[prefix-100k]}/1024:.0f} MiB vs {one/1024:.0f} MiB with one) | {(${route_rss[prefix-100k]} - one) * 1.024 / 100000:.2f} KB |")
print(f"| memory per route, host routes | {(${route_rss[host-100k]} - one) * 1.024 / 100000:.2f} KB |")
print(f"| memory per route, each with its own HMAC key file | {(${route_rss[keyed]} - one) * 1.024 / 100000:.2f} KB |")
print(f"| tollgate check: prefixes / hosts / a key each | $check_prefix s / $check_host s / $check_keyed s |")
print(f"| reload (SIGHUP to swap), path prefixes, under load | $reload_s s ($reload_n requests answered 200 meanwhile, max latency $reload_max) |")
print(f"| RSS before → after the reload | {$rss_before_reload/1024:.0f} → {$rss_after_reload/1024:.0f} MiB |")
print()
print("| one signature check (criterion median) | 1 key | 1,000 keys | ratio |")
print("|---|---:|---:|---:|")
for name, a, b in (("HMAC signed URL, kid chosen", $(key_ns signed_url_1), $(key_ns signed_url_1000)),
                   ("JWT, JWK set (HS256, kid)", $(key_ns jwt_set_1), $(key_ns jwt_set_1000))):
    print(f"| {name} | {a:,} ns | {b:,} ns | {b / a:.2f}x |")
EOF
