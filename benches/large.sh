#!/usr/bin/env bash
# Paired large-download benchmark: a 100 MiB file fetched with curl straight
# from nginx (sendfile), through HAProxy (nbthread 1, option
# splice-response: the kernel-splicing reference, no credential check),
# through benches/splice_relay.py (the least a spliced second hop costs:
# no HTTP logic, one connection at a time) and through one or two tollgate
# builds, alternated round by round so the
# machine's drift hits every path alike. Reports medians of MiB/s, the ratio
# to nginx direct (per round, then the median) and each tollgate's CPU time
# per download (utime + stime from /proc).
#
# Usage: benches/large.sh NEW_BINARY [BASE_BINARY]   (ROUNDS=9 by default)
# Loopback only; about ROUNDS x 1 s.
set -euo pipefail
new=$(realpath "$1"); base=${2:+$(realpath "$2")}; rounds=${ROUNDS:-9}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
w=$(mktemp -d); chmod 755 "$w"; pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$w"' EXIT
mkdir -p "$w/www/f" "$w/tmp"; head -c 104857600 /dev/urandom > "$w/www/f/big.bin"; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > "$w/key"
NG=$(port); HP=$(port); RL=$(port)
cat > "$w/nginx.conf" <<N
worker_processes 1; pid $w/nginx.pid; error_log $w/err.log warn; events { worker_connections 1024; }
http { access_log off; sendfile on; client_body_temp_path $w/tmp/b; proxy_temp_path $w/tmp/p; fastcgi_temp_path $w/tmp/f; uwsgi_temp_path $w/tmp/u; scgi_temp_path $w/tmp/s;
server { listen 127.0.0.1:$NG; root $w/www; } }
N
/usr/sbin/nginx -p "$w" -c "$w/nginx.conf" -g 'daemon off;' & pids+=($!)
cat > "$w/haproxy.cfg" <<H
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:$HP
  option splice-response
  default_backend b
backend b
  server n 127.0.0.1:$NG
H
haproxy -f "$w/haproxy.cfg" -db >/dev/null 2>&1 & pids+=($!)
python3 "$(dirname "$0")/splice_relay.py" "$RL" "$NG" & pids+=($!)
start() { # binary -> "port pid"
  local p a d; p=$(port); a=$(port); d=$(mktemp -d -p "$w")
  cat > "$d/t.yaml" <<Y
listen: 127.0.0.1:$p
admin: 127.0.0.1:$a
keys: { k: { hmac: { secret_file: $w/key } } }
upstreams: { nginx: { url: "http://127.0.0.1:$NG" } }
routes: [ { name: f, prefix: /f/, upstream: nginx, auth: { signed_url: { keys: [k] } } } ]
log: { access_log: false }
reload: { watch: false }
Y
  "$1" serve --config "$d/t.yaml" 2>/dev/null & echo "$p $!"
}
read -r PN pn < <(start "$new"); pids+=("$pn")
if [ -n "$base" ]; then read -r PB pb < <(start "$base"); pids+=("$pb"); fi
for p in "$NG" "$HP" "$RL" "$PN" ${PB:-}; do
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
u=$("$new" sign --key-file "$w/key" --ttl 1h /f/big.bin)
speed() { curl -s -o /dev/null -w '%{speed_download}' "$1"; }
clk=$(getconf CLK_TCK)
cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk -v c="$clk" '{printf "%.4f", ($12 + $13) / c}'; }
timed() { # pid url -> "speed cpu-seconds"
  local c0 s c1; c0=$(cpu "$1"); s=$(speed "$2"); c1=$(cpu "$1"); echo "$s $(python3 -c "print($c1 - $c0)")"
}
direct="http://127.0.0.1:$NG/f/big.bin"; hap="http://127.0.0.1:$HP/f/big.bin"; relay="http://127.0.0.1:$RL/f/big.bin"
for x in "$direct" "$hap" "$relay" "http://127.0.0.1:$PN$u" ${PB:+"http://127.0.0.1:$PB$u"}; do speed "$x" >/dev/null; done
rows=()
for _ in $(seq "$rounds"); do
  r="$(speed "$direct") $(speed "$hap") $(speed "$relay") $(timed "$pn" "http://127.0.0.1:$PN$u")"
  [ -n "$base" ] && r="$r $(timed "$pb" "http://127.0.0.1:$PB$u")"
  rows+=("$r")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import sys, statistics as st
rows = [list(map(float, l.split())) for l in sys.stdin]
med = lambda f: st.median(f(r) for r in rows)
print(f"{len(rows)} rounds, 100 MiB, medians")
print(f"nginx direct               {med(lambda r: r[0]) / 2**20:7,.0f} MiB/s")
print(f"HAProxy splice-response    {med(lambda r: r[1]) / 2**20:7,.0f} MiB/s  {med(lambda r: r[1] / r[0]):.2f}x direct")
print(f"minimal splice relay       {med(lambda r: r[2]) / 2**20:7,.0f} MiB/s  {med(lambda r: r[2] / r[0]):.2f}x direct")
print(f"tollgate (new)             {med(lambda r: r[3]) / 2**20:7,.0f} MiB/s  {med(lambda r: r[3] / r[0]):.2f}x direct  CPU {med(lambda r: r[4]) * 1e3:.0f} ms per download")
if len(rows[0]) > 5:
    print(f"tollgate (base)            {med(lambda r: r[5]) / 2**20:7,.0f} MiB/s  {med(lambda r: r[5] / r[0]):.2f}x direct  CPU {med(lambda r: r[6]) * 1e3:.0f} ms per download")
'
