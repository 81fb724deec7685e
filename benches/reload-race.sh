#!/usr/bin/env bash
# The nginx-reload race of issue 16, against three proxies in front of the
# same nginx: wrk -c16 for [seconds] (default 22) on a 1 KiB file while the
# backend nginx is gracefully reloaded (`nginx -s reload`) every [interval]
# seconds (default 2.5), which closes its idle keep-alive connections.
#
#   tollgate                 signed URL -> nginx (also SIGHUP'd at each reload)
#   nginx as reverse proxy   upstream keepalive 64 (retries on a new connection)
#   HAProxy                  no retry-on: defaults (http-reuse safe), and
#                            http-reuse always as benches/load.sh runs it
#
# Prints, per proxy, the requests wrk completed and those that failed (non-2xx
# answers plus socket errors). Loopback only, bounded (4 runs of [seconds]).
# Not part of CI.
#
# Usage: benches/reload-race.sh [seconds (default 22)] [interval (default 2.5)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-22}
interval=${2:-2.5}

source "$root/benches/lib.sh"
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
apt_install ${need[@]+"${need[@]}"}
cargo build --release --locked -q
bin=$root/target/release/tollgate

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in backend proxy; do
    [ -f "$work/$c.pid" ] && /usr/sbin/nginx -p "$work" -c "$work/$c.conf" -s stop 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/www/f" "$work/tmp"
head -c 1024 /dev/urandom > "$work/www/f/file.bin"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/key"   # generated per run
BK=$(port); NP=$(port); HA=$(port); HR=$(port); TG=$(port); TGA=$(port)

common="error_log $work/%s-error.log warn; events { worker_connections 4096; }"
cat > "$work/backend.conf" <<EOF
worker_processes 1;
pid $work/backend.pid;
$(printf "$common" backend)
http {
  access_log off;
  client_body_temp_path $work/tmp/b; proxy_temp_path $work/tmp/p; fastcgi_temp_path $work/tmp/f;
  uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BK; root $work/www; }
}
EOF
cat > "$work/proxy.conf" <<EOF
worker_processes 1;
pid $work/proxy.pid;
$(printf "$common" proxy)
http {
  access_log off;
  client_body_temp_path $work/tmp/b2; proxy_temp_path $work/tmp/p2; fastcgi_temp_path $work/tmp/f2;
  uwsgi_temp_path $work/tmp/u2; scgi_temp_path $work/tmp/s2;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BK; keepalive 64; }
  server {
    listen 127.0.0.1:$NP;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
haproxy_cfg() { # port [http-reuse mode]
  cat <<EOF
global
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$1
  default_backend be
backend be
  ${2:+http-reuse $2}
  server s1 127.0.0.1:$BK
EOF
}
haproxy_cfg "$HA" > "$work/haproxy.cfg"
haproxy_cfg "$HR" always > "$work/haproxy-reuse.cfg"
cat > "$work/tollgate.yaml" <<EOF
listen: 127.0.0.1:$TG
admin: 127.0.0.1:$TGA
keys: { k: { hmac: { secret_file: key, encoding: hex } } }
upstreams: { nginx: { url: "http://127.0.0.1:$BK" } }
routes: [ { name: f, prefix: /f/, upstream: nginx, auth: { signed_url: { keys: [k] } } } ]
log: { access_log: false }
reload: { watch: false }
EOF
/usr/sbin/nginx -p "$work" -c "$work/backend.conf"
/usr/sbin/nginx -p "$work" -c "$work/proxy.conf"
/usr/sbin/haproxy -q -f "$work/haproxy.cfg" & pids+=($!)
/usr/sbin/haproxy -q -f "$work/haproxy-reuse.cfg" & pids+=($!)
"$bin" serve --config "$work/tollgate.yaml" 2>"$work/tollgate.log" & tg_pid=$!; pids+=($tg_pid)
for p in $BK $NP $HA $HR $TG $TGA; do wait_port "$p"; done
signed=$("$bin" sign --key-file "$work/key" --key-encoding hex --ttl 1h /f/file.bin)

metric() { python3 - "$TGA" "$1" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(sys.argv[2]))))
EOF
}

run() { # name url [tollgate]
  local name=$1 url=$2 tg=${3:-}
  wrk -t2 -c16 -d"${secs}s" "$url" > "$work/wrk.out" & local w=$!
  local reloads=0 end=$(( $(date +%s) + secs - 1 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    sleep "$interval"
    /usr/sbin/nginx -p "$work" -c "$work/backend.conf" -s reload 2>/dev/null
    [ -z "$tg" ] || kill -HUP "$tg_pid"
    reloads=$((reloads + 1))
  done
  wait "$w"
  local total non2xx sock
  total=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk.out"); non2xx=${non2xx:-0}
  sock=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$work/wrk.out"); sock=${sock:-0}
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$total" "$((non2xx + sock))" "$non2xx" "$reloads"
}
echo "| proxy | requests | failed | of which non-2xx | nginx reloads |"
echo "|---|---:|---:|---:|---:|"
run "tollgate" "http://127.0.0.1:$TG$signed" tollgate
echo "tollgate: tollgate_upstream_retries_total $(metric tollgate_upstream_retries_total), tollgate_upstream_errors_total $(metric tollgate_upstream_errors_total)" >&2
run "nginx as reverse proxy" "http://127.0.0.1:$NP/f/file.bin"
run "HAProxy, defaults (no retry-on)" "http://127.0.0.1:$HA/f/file.bin"
run "HAProxy, http-reuse always (no retry-on; as in benches/load.sh)" "http://127.0.0.1:$HR/f/file.bin"
