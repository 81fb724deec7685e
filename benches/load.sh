#!/usr/bin/env bash
# Loopback load benchmark: tollgate against the peers users would otherwise
# pick, all in front of the same nginx, measured in one run. Every row
# reports requests/s, p50, p99 and the CPU time of the proxy's own
# processes per request (utime + stime from /proc/<pid>/stat over the run,
# divided by the requests it answered): the steadiest figure on a small,
# shared box.
#
# Plain HTTP/1.1, 1 KiB file, wrk -t1 -c32:
#   nginx direct                 the floor: nginx serving the file itself
#   nginx secure_link            its own single-worker nginx, MD5 link + expiry, proxying to nginx
#   HAProxy jwt_verify           HS256 bearer, exp checked, Authorization removed (default threads, and nbthread 1)
#   tollgate signed URL / JWT bearer (verdict cached)   default workers, and workers: 1
#   tollgate signed URL, access log on (the default; the other rows log nothing)
# TLS (ECDSA P-256, each proxy terminating it, HTTP/1.1 to nginx), the
# single-threaded instances (HAProxy nbthread 1, nginx 1 worker, tollgate
# workers: 1):
#   HTTP/2: h2load -c32 -m10, a 1 KiB and a 100 KiB file
#   HTTP/1.1 over TLS: wrk -t1 -c32, 1 KiB
#   handshakes: openssl s_time, full (-new) and resumed (-reuse)
# Segment storm: one path token, wrk -c64 over 16 different 100 KiB
# segments, against a plain signed URL per segment.
#
# Rounds alternate the rows so drift hits every row alike; the median round
# (by requests/s) is reported. Every peer is first shown to refuse a forged
# credential. Then: a 100 MiB download through tollgate vs nginx and vs the
# S3 server (moto), tollgate's RSS idle / with 1000 open keep-alive
# connections / after 10^6 distinct invalid tokens. Loopback only, bounded
# in time (about 12 minutes with the defaults).
#
# Usage: benches/load.sh [seconds-per-run (default 5)] [rounds (default 3)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-5}
rounds=${2:-3}

source "$root/benches/lib.sh"
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
apt_install ${need[@]+"${need[@]}"}
if [ ! -x .venv/bin/moto_server ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
fi
cargo build --release --locked -q
bin=$root/target/release/tollgate
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

chmod 755 "$work"
mkdir -p "$work/www/f/seg" "$work/tmp" "$work/tmp2"
head -c 1024 /dev/urandom > "$work/www/f/file.bin"
head -c $((100 * 1024)) /dev/urandom > "$work/www/f/100k.bin"
for i in $(seq 16); do head -c $((100 * 1024)) /dev/urandom > "$work/www/f/seg/$i.ts"; done
head -c $((100 * 1024 * 1024)) /dev/zero > "$work/www/f/big.bin"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')   # 64 hex chars, generated per run
printf '%s' "$secret" > "$work/key"
# One ECDSA P-256 certificate for every TLS listener, generated per run.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
cat "$work/tls.crt" "$work/tls.key" > "$work/tls.pem"
BK=$(port); SL=$(port); SLS=$(port); HA=$(port); HA1=$(port); HA1S=$(port)
TG=$(port); TGA=$(port); TL=$(port); TLA=$(port); T1=$(port); T1A=$(port); T1S=$(port); T1SA=$(port)

nginx_conf() { # prefix, then the server blocks
  cat <<EOF
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path $work/$1/b; proxy_temp_path $work/$1/p; fastcgi_temp_path $work/$1/f;
  uwsgi_temp_path $work/$1/u; scgi_temp_path $work/$1/s;
  keepalive_requests 1000000;
  $2
}
EOF
}
nginx_conf backend "server { listen 127.0.0.1:$BK; root $work/www; }" > "$work/nginx.conf"
secure_link_loc="location / {
      secure_link \$arg_md5,\$arg_expires;
      secure_link_md5 \"\$secure_link_expires\$uri $secret\";
      if (\$secure_link = \"\") { return 403; }
      if (\$secure_link = \"0\") { return 410; }
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }"
nginx_conf secure_link "upstream backend { server 127.0.0.1:$BK; keepalive 64; }
  ssl_certificate $work/tls.crt; ssl_certificate_key $work/tls.key;
  server { listen 127.0.0.1:$SL; $secure_link_loc }
  server { listen 127.0.0.1:$SLS ssl http2; $secure_link_loc }" > "$work/nginx-sl.conf"
mkdir -p "$work/backend" "$work/secure_link"
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & bk_pid=$!; pids+=($bk_pid)
/usr/sbin/nginx -p "$work" -c "$work/nginx-sl.conf" -g 'daemon off;' & sl_pid=$!; pids+=($sl_pid)

haproxy_cfg() { # nbthread line, then bind lines
  cat <<EOF
global
  maxconn 8000
  $1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  $2
  http-request set-var(txn.bearer) http_auth_bearer
  http-request deny deny_status 401 unless { var(txn.bearer) -m found }
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.alg) -m str HS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$secret") -m int 1 }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  http-request del-header Authorization
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$BK
EOF
}
haproxy_cfg "" "bind 127.0.0.1:$HA" > "$work/haproxy.cfg"
haproxy_cfg "nbthread 1" "bind 127.0.0.1:$HA1
  bind 127.0.0.1:$HA1S ssl crt $work/tls.pem alpn h2,http/1.1" > "$work/haproxy-1.cfg"
/usr/sbin/haproxy -q -f "$work/haproxy.cfg" & ha_pid=$!; pids+=($ha_pid)
/usr/sbin/haproxy -q -f "$work/haproxy-1.cfg" & ha1_pid=$!; pids+=($ha1_pid)

tg_config() { # listen admin access_log workers [tls]
  cat <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
workers: $4
keys:
  k: { hmac: { secret_file: key } }
upstreams:
  nginx: { url: "http://127.0.0.1:$BK" }
routes:
  - { name: f, prefix: /f/, upstream: nginx, auth: { signed_url: { keys: [k], path_tokens: true }, jwt: { keys: [k], leeway: 0s } } }
log: { access_log: $3 }
reload: { watch: false }
EOF
  [ -z "${5:-}" ] || printf 'tls: { cert_file: tls.crt, key_file: tls.key }\n'
}
tg_config "$TG" "$TGA" false "$(nproc)" > "$work/tollgate.yaml"
tg_config "$TL" "$TLA" true "$(nproc)" > "$work/tollgate-log.yaml"
tg_config "$T1" "$T1A" false 1 > "$work/tollgate-1.yaml"
tg_config "$T1S" "$T1SA" false 1 tls > "$work/tollgate-1-tls.yaml"
"$bin" serve --config "$work/tollgate.yaml" 2>"$work/tollgate.log" & tg_pid=$!; pids+=($tg_pid)
"$bin" serve --config "$work/tollgate-log.yaml" 2>/dev/null & tl_pid=$!; pids+=($tl_pid)
"$bin" serve --config "$work/tollgate-1.yaml" 2>/dev/null & t1_pid=$!; pids+=($t1_pid)
"$bin" serve --config "$work/tollgate-1-tls.yaml" 2>"$work/tollgate-tls.log" & t1s_pid=$!; pids+=($t1s_pid)
for p in $BK $SL $SLS $HA $HA1 $HA1S $TG $TL $T1 $T1S; do wait_port "$p"; done

exp=$(( $(date +%s) + 3600 ))
sl_link() { # path -> secure_link query
  local md5; md5=$(printf '%s' "${exp}$1 $secret" | openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=')
  echo "$1?md5=$md5&expires=$exp"
}
sign() { TOLLGATE_KEY="$secret" "$bin" sign --ttl 1h "$@"; }
signed=$(sign /f/file.bin); signed100=$(sign /f/100k.bin)
token=$(TOLLGATE_KEY="$secret" "$bin" token --ttl 1h --sub bench)
expired=$(TOLLGATE_KEY="$secret" "$bin" token --ttl 0s --sub bench)
segtoken=$(sign --path-token --prefix /f/seg/ /f/seg/1.ts); segtoken=${segtoken%/1.ts}
sleep 1

code() { curl -sk -o /dev/null -w '%{http_code}' "$@"; }
# Flips the first character of the signature (a JWT's last segment, the
# sig= or md5= value, or a path token's last field): the last character may
# only carry padding bits that lenient base64 decoders ignore.
forge() {
  local s=$1 head sig
  if [[ $s == *"sig="* ]]; then head=${s%%sig=*}sig=; sig=${s#*sig=}
  elif [[ $s == *"md5="* ]]; then head=${s%%md5=*}md5=; sig=${s#*md5=}
  elif [[ $s == *"~"* ]]; then head=${s%~*}~; sig=${s##*~}
  else head=${s%.*}.; sig=${s##*.}; fi
  local first=A; [ "${sig:0:1}" = A ] && first=B
  echo "${head}${first}${sig:1}"
}
check() { # expected, description, curl args...
  local want=$1 what=$2; shift 2
  local got; got=$(code "$@")
  [ "$got" = "$want" ] || { echo "bench: $what answered $got, expected $want" >&2; exit 1; }
}
bearer="Authorization: Bearer $token"
check 200 "nginx direct" "http://127.0.0.1:$BK/f/file.bin"
check 200 "secure_link valid" "http://127.0.0.1:$SL$(sl_link /f/file.bin)"
check 403 "secure_link forged" "http://127.0.0.1:$SL$(forge "$(sl_link /f/file.bin)")"
sl_file=$(sl_link /f/file.bin)
check 403 "secure_link other file" "http://127.0.0.1:$SL/f/big.bin?${sl_file#*\?}"
check 403 "secure_link forged, TLS" "https://127.0.0.1:$SLS$(forge "$(sl_link /f/file.bin)")"
for h in $HA $HA1; do
  check 200 "haproxy valid" -H "$bearer" "http://127.0.0.1:$h/f/file.bin"
  check 401 "haproxy forged" -H "Authorization: Bearer $(forge "$token")" "http://127.0.0.1:$h/f/file.bin"
  check 401 "haproxy expired" -H "Authorization: Bearer $expired" "http://127.0.0.1:$h/f/file.bin"
  check 401 "haproxy missing" "http://127.0.0.1:$h/f/file.bin"
done
check 401 "haproxy forged, TLS" -H "Authorization: Bearer $(forge "$token")" "https://127.0.0.1:$HA1S/f/file.bin"
for t in "http://127.0.0.1:$TG" "http://127.0.0.1:$T1" "https://127.0.0.1:$T1S"; do
  check 200 "tollgate signed" "$t$signed"
  check 403 "tollgate forged" "$t$(forge "$signed")"
  check 200 "tollgate jwt" -H "$bearer" "$t/f/file.bin"
  check 401 "tollgate jwt forged" -H "Authorization: Bearer $(forge "$token")" "$t/f/file.bin"
  check 401 "tollgate jwt expired" -H "Authorization: Bearer $expired" "$t/f/file.bin"
done
check 200 "tollgate path token" "http://127.0.0.1:$TG$segtoken/2.ts"
check 403 "tollgate path token forged" "http://127.0.0.1:$TG$(forge "$segtoken")/2.ts"
echo "bench: every peer verifies (bad credentials refused)" >&2

# CPU seconds (utime + stime, all threads) of a process and its children
# (nginx's workers).
clk=$(getconf CLK_TCK)
cpu() {
  local all=("$@") p
  for p in "$@"; do all+=($(pgrep -P "$p" || true)); done
  for p in "${all[@]}"; do sed 's/^.*) //' "/proc/$p/stat"; done | awk -v c="$clk" '{t += $12 + $13} END {printf "%.4f\n", t / c}'
}

# The rows: name | tool | proxy pid(s) | target | header | extra
# tool: wrk (HTTP/1.1, -t1 -c32), wrks (wrk with the storm script, -c64),
# h2 (h2load -c32 -m10).
rows=()
row() { rows+=("$1|$2|$3|$4|${5:-}|${6:-}"); }
row "nginx direct" wrk "$bk_pid" "http://127.0.0.1:$BK/f/file.bin"
row "nginx secure_link (1 worker)" wrk "$sl_pid" "http://127.0.0.1:$SL$(sl_link /f/file.bin)"
row "HAProxy jwt_verify (default threads)" wrk "$ha_pid" "http://127.0.0.1:$HA/f/file.bin" "$bearer"
row "HAProxy jwt_verify (nbthread 1)" wrk "$ha1_pid" "http://127.0.0.1:$HA1/f/file.bin" "$bearer"
row "tollgate signed URL (default workers)" wrk "$tg_pid" "http://127.0.0.1:$TG$signed"
row "tollgate JWT cached (default workers)" wrk "$tg_pid" "http://127.0.0.1:$TG/f/file.bin" "$bearer"
row "tollgate signed URL, access log on" wrk "$tl_pid" "http://127.0.0.1:$TL$signed"
row "tollgate signed URL (workers: 1)" wrk "$t1_pid" "http://127.0.0.1:$T1$signed"
row "tollgate JWT cached (workers: 1)" wrk "$t1_pid" "http://127.0.0.1:$T1/f/file.bin" "$bearer"
row "h2 TLS 1 KiB: HAProxy jwt_verify" h2 "$ha1_pid" "https://127.0.0.1:$HA1S/f/file.bin" "$bearer"
row "h2 TLS 1 KiB: nginx secure_link" h2 "$sl_pid" "https://127.0.0.1:$SLS$(sl_link /f/file.bin)"
row "h2 TLS 1 KiB: tollgate signed URL" h2 "$t1s_pid" "https://127.0.0.1:$T1S$signed"
row "h2 TLS 1 KiB: tollgate JWT cached" h2 "$t1s_pid" "https://127.0.0.1:$T1S/f/file.bin" "$bearer"
row "h2 TLS 100 KiB: HAProxy jwt_verify" h2 "$ha1_pid" "https://127.0.0.1:$HA1S/f/100k.bin" "$bearer"
row "h2 TLS 100 KiB: nginx secure_link" h2 "$sl_pid" "https://127.0.0.1:$SLS$(sl_link /f/100k.bin)"
row "h2 TLS 100 KiB: tollgate signed URL" h2 "$t1s_pid" "https://127.0.0.1:$T1S$signed100"
row "h2 TLS 100 KiB: tollgate JWT cached" h2 "$t1s_pid" "https://127.0.0.1:$T1S/f/100k.bin" "$bearer"
row "h1 TLS 1 KiB: HAProxy jwt_verify" wrk "$ha1_pid" "https://127.0.0.1:$HA1S/f/file.bin" "$bearer"
row "h1 TLS 1 KiB: nginx secure_link" wrk "$sl_pid" "https://127.0.0.1:$SLS$(sl_link /f/file.bin)"
row "h1 TLS 1 KiB: tollgate signed URL" wrk "$t1s_pid" "https://127.0.0.1:$T1S$signed"
row "h1 TLS 1 KiB: tollgate JWT cached" wrk "$t1s_pid" "https://127.0.0.1:$T1S/f/file.bin" "$bearer"
# Segment storm: 16 segments of 100 KiB under one path token, or one plain
# signed URL each, fetched in turn by 64 connections.
: > "$work/seg-token.txt"; : > "$work/seg-signed.txt"
for i in $(seq 16); do
  echo "$segtoken/$i.ts" >> "$work/seg-token.txt"
  sign "/f/seg/$i.ts" >> "$work/seg-signed.txt"
done
cat > "$work/storm.lua" <<'EOF'
local paths, n = {}, 0
init = function(args) for line in io.lines(args[1]) do paths[#paths + 1] = line end end
request = function() n = n % #paths + 1; return wrk.format("GET", paths[n]) end
EOF
row "segment storm: path token, 100 KiB" wrks "$tg_pid" "http://127.0.0.1:$TG" "" "$work/seg-token.txt"
row "segment storm: signed URL per segment, 100 KiB" wrks "$tg_pid" "http://127.0.0.1:$TG" "" "$work/seg-signed.txt"

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else {sub(/s$/,"",v); print v*1000}}'; }
run_row() { # index, seconds -> "index rps p50 p99 cpu_us_per_request" (p50/p99 "-" where the tool has none)
  local i=$1 d=$2 name tool pidlist url header extra
  IFS='|' read -r name tool pidlist url header extra <<<"${rows[$i]}"
  local h=(); [ -z "$header" ] || h=(-H "$header")
  local before after out n rps p50 p99
  before=$(cpu $pidlist)
  case $tool in
    wrk|wrks)
      local args=(-t1 -c32 -d"${d}s" --latency "${h[@]}")
      [ "$tool" = wrk ] || args=(-t1 -c64 -d"${d}s" --latency -s "$work/storm.lua")
      out=$(wrk "${args[@]}" "$url" ${extra:+-- "$extra"})
      after=$(cpu $pidlist)
      n=$(awk '/requests in/ {print $1}' <<<"$out")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
      p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
      local errors; errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
      [ -z "$errors" ] || { echo "bench: $name: $errors" >&2; exit 1; } ;;
    h2)
      out=$(h2load -c32 -m10 -D "$d" --log-file="$work/h2.log" "${h[@]}" "$url")
      after=$(cpu $pidlist)
      # Requests answered: the 2xx count (in -D mode h2load's "succeeded"
      # leaves out answers that arrived as the window closed).
      n=$(awk '/^status codes:/ {print $3}' <<<"$out")
      local bad; bad=$(awk '/^requests:/ {print $10 + $12 + $14} /^status codes:/ {print $7 + $9}' <<<"$out" | paste -sd+ | bc)
      [ "$bad" = 0 ] && [ "${n:-0}" -gt 0 ] || { echo "bench: $name: $bad failed or non-2xx answers" >&2; echo "$out" >&2; exit 1; }
      rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")
      # Percentiles from h2load's per-request log (its third column: µs
      # until the end of the response; failed streams are refused above).
      read -r p50 p99 < <(cut -f3 "$work/h2.log" | sort -n | awk '{v[NR]=$1} END {printf "%.3f %.3f\n", v[int(NR*0.5)+1]/1000, v[int(NR*0.99)+1]/1000}') ;;
  esac
  python3 -c "import sys; print(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], round((float(sys.argv[6]) - float(sys.argv[5])) * 1e6 / int(sys.argv[7]), 2))" \
    "$i" "$rps" "$p50" "$p99" "$before" "$after" "$n"
}

# Every row answers before timing; then a warm-up (pools, page cache).
for i in "${!rows[@]}"; do run_row "$i" 1 >/dev/null; done
: > "$work/results"
for r in $(seq "$rounds"); do
  for i in "${!rows[@]}"; do
    res=$(run_row "$i" "$secs"); echo "$res" >> "$work/results"
    echo "bench: round $r ${rows[$i]%%|*}: $res" >&2
  done
done

names=(); for i in "${!rows[@]}"; do names+=("${rows[$i]%%|*}"); done
python3 - "$work/results" "${names[@]}" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    i, rps, p50, p99, cpu = line.split()
    rows.setdefault(int(i), []).append((float(rps), p50, p99, float(cpu)))
names = sys.argv[2:]
med = {i: sorted(v)[len(v) // 2] for i, v in rows.items()}
idx = {n: i for i, n in enumerate(names)}
def fmt(v):
    return v if v == "-" else f"{float(v):.3f}"
def table(title, members, base_rps, base_cpu, base_name):
    print(f"\n{title}\n")
    print(f"| setup | requests/s | p50 ms | p99 ms | CPU µs/req | × {base_name} req/s | × {base_name} CPU/req |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in members:
        rps, p50, p99, cpu = med[idx[n]]
        print(f"| {n} | {rps:,.0f} | {fmt(p50)} | {fmt(p99)} | {cpu:.1f} | {rps/base_rps:.2f} | {cpu/base_cpu:.2f} |")
plain = [n for n in names if not n.startswith(("h2 ", "h1 ", "segment"))]
ha = med[idx["HAProxy jwt_verify (nbthread 1)"]]
table("Plain HTTP/1.1, 1 KiB (wrk -t1 -c32); ratios to HAProxy nbthread 1", plain, ha[0], ha[3], "HAProxy")
for group, base in (("h2 TLS 1 KiB", "h2 TLS 1 KiB: HAProxy jwt_verify"), ("h2 TLS 100 KiB", "h2 TLS 100 KiB: HAProxy jwt_verify"),
                    ("h1 TLS 1 KiB", "h1 TLS 1 KiB: HAProxy jwt_verify")):
    b = med[idx[base]]
    table(f"{group} (single-threaded proxies); ratios to HAProxy", [n for n in names if n.startswith(group + ":")], b[0], b[3], "HAProxy")
b = med[idx["segment storm: signed URL per segment, 100 KiB"]]
table("Segment storm (tollgate, default workers, wrk -c64); ratios to the signed URL", [n for n in names if n.startswith("segment")], b[0], b[3], "signed URL")
EOF

# TLS handshakes: full and resumed, one client (openssl s_time), CPU of the
# proxy per handshake.
echo
echo "| TLS handshakes (openssl s_time, ${secs}s) | full/s | CPU µs per full | resumed/s | CPU µs per resumed |"
echo "|---|---:|---:|---:|---:|"
for hs in "HAProxy|$ha1_pid|$HA1S" "nginx|$sl_pid|$SLS" "tollgate|$t1s_pid|$T1S"; do
  IFS='|' read -r name pidlist p <<<"$hs"
  line="| $name"
  for mode in -new -reuse; do
    before=$(cpu $pidlist)
    out=$(openssl s_time -connect "127.0.0.1:$p" $mode -time "$secs" 2>/dev/null || true)
    after=$(cpu $pidlist)
    n=$(awk '/connections in .* real seconds/ {print $1}' <<<"$out" | tail -1)
    s=$(awk '/connections in .* real seconds/ {print $4}' <<<"$out" | tail -1)
    line="$line | $(python3 -c "import sys; n=int(sys.argv[1] or 0); print(f'{n/float(sys.argv[2] or 1):,.0f} | {((float(sys.argv[4])-float(sys.argv[3]))*1e6/n) if n else float(\"nan\"):.0f}')" "$n" "$s" "$before" "$after")"
  done
  echo "$line |"
done

# 100 MiB streamed download: one warm-up each, then 5 alternated, median.
speed() { curl -s -o /dev/null -w '%{speed_download}' "$@"; }
big_signed=$(TOLLGATE_KEY="$secret" "$bin" sign --ttl 1h /f/big.bin)
speed "http://127.0.0.1:$BK/f/big.bin" >/dev/null; speed "http://127.0.0.1:$TG$big_signed" >/dev/null
d=(); t=()
big_cpu0=$(cpu "$tg_pid")
for _ in 1 2 3 4 5; do
  d+=("$(speed "http://127.0.0.1:$BK/f/big.bin")")
  t+=("$(speed "http://127.0.0.1:$TG$big_signed")")
done
big_cpu1=$(cpu "$tg_pid")
spliced=$(curl -s "http://127.0.0.1:$TGA/metrics" | awk '/^tollgate_spliced_bytes_total/ {print $2}')
python3 - "$big_cpu0" "$big_cpu1" "${spliced:-0}" "${d[@]}" "${t[@]}" <<'EOF'
import statistics, sys
c0, c1, spliced = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
v = [float(x) for x in sys.argv[4:]]
d, t = statistics.median(v[:5]), statistics.median(v[5:])
print(f"\n100 MiB download, nginx direct {d/2**20:,.0f} MiB/s, through tollgate {t/2**20:,.0f} MiB/s: ratio {t/d:.2f}; "
      f"tollgate CPU {(c1-c0)*1e3/5:,.0f} ms per 100 MiB; spliced so far {spliced/2**20:,.0f} MiB")
EOF

rss() { awk '/VmRSS/ {print $2}' "/proc/$tg_pid/status"; }
echo "tollgate RSS idle (after the runs above): $(rss) kB"
.venv/bin/python - "$TG" "$signed" "$tg_pid" <<'EOF'
import socket, sys, time
port, target, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conns = []
for _ in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    conns.append(s)
for s in conns:
    s.recv(65536)
time.sleep(1)
rss = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0]
print(f"tollgate RSS with 1000 open keep-alive connections: {rss} kB")
for s in conns:
    s.close()
EOF

# 10^6 distinct invalid tokens, bounded to 3 minutes.
cat > "$work/flood.lua" <<'EOF'
local n = 0
request = function()
  n = n + 1
  local token = "eyJhbGciOiJIUzI1NiJ9.eyJuIjoi" .. n .. "-" .. math.random(1, 1e9) .. "In0.c2lnbmF0dXJl"
  return wrk.format("GET", "/f/file.bin", { ["Authorization"] = "Bearer " .. token })
end
EOF
sent=0; start=$(date +%s)
while [ "$sent" -lt 1000000 ] && [ $(( $(date +%s) - start )) -lt 180 ]; do
  out=$(wrk -t1 -c32 -d10s -s "$work/flood.lua" "http://127.0.0.1:$TG")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  sent=$((sent + n))
  echo "bench: flood $sent invalid tokens, RSS $(rss) kB" >&2
done
echo "tollgate RSS after $sent distinct invalid tokens: $(rss) kB (cache bound 100000 entries)"
check 200 "tollgate still serving valid requests after the flood" "http://127.0.0.1:$TG$signed"

# 100 MiB object: straight from the S3 server vs through tollgate.
MP=$(port)
.venv/bin/moto_server -H 127.0.0.1 -p "$MP" >/dev/null 2>&1 & pids+=($!)
wait_port "$MP"
creds=$(.venv/bin/python tests/py/moto_setup.py "http://127.0.0.1:$MP" media '{}')
.venv/bin/python - "$MP" "$creds" "$work" <<'EOF'
import json, sys, boto3
port, creds, work = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id=creds["access_key"], aws_secret_access_key=creds["secret_key"])
s3.upload_file(f"{work}/www/f/big.bin", "media", "big.bin")
open(f"{work}/s3-access", "w").write(creds["access_key"])
open(f"{work}/s3-secret", "w").write(creds["secret_key"])
EOF
S3P=$(port); S3A=$(port)
cat > "$work/tollgate-s3.yaml" <<EOF
listen: 127.0.0.1:$S3P
admin: 127.0.0.1:$S3A
keys: { k: { hmac: { secret_file: key } } }
upstreams:
  s3: { url: "http://127.0.0.1:$MP", s3: { bucket: media, region: us-east-1, access_key_file: s3-access, secret_key_file: s3-secret } }
routes: [ { name: m, prefix: /m/, upstream: s3, auth: { signed_url: { keys: [k] } } } ]
log: { access_log: false }
EOF
"$bin" serve --config "$work/tollgate-s3.yaml" 2>/dev/null & s3_pid=$!; pids+=($s3_pid)
wait_port "$S3P"
s3_signed=$(TOLLGATE_KEY="$secret" "$bin" sign --ttl 1h /m/big.bin)
# "Direct" is curl signing SigV4 itself (moto's presigned-URL path fails
# with authentication on); tollgate gets tollgate's signed URL.
direct=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$(cat "$work/s3-access"):$(cat "$work/s3-secret")"
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$MP/media/big.bin")
check 200 "S3 direct, signed" "${direct[@]}"
[ "$(code "http://127.0.0.1:$MP/media/big.bin")" != 200 ] || { echo "bench: the bucket is not private" >&2; exit 1; }
d=(); t=(); peak=0
for _ in 1 2 3; do
  d+=("$(speed "${direct[@]}")")
  t+=("$(speed "http://127.0.0.1:$S3P$s3_signed")")
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$s3_pid/status")
done
python3 - "$peak" "${d[@]}" "${t[@]}" <<'EOF'
import statistics, sys
peak = sys.argv[1]
v = [float(x) for x in sys.argv[2:]]
d, t = statistics.median(v[:3]), statistics.median(v[3:])
print(f"100 MiB object, S3 server (moto) direct {d/2**20:,.0f} MiB/s, through tollgate {t/2**20:,.0f} MiB/s: ratio {t/d:.2f}; tollgate peak RSS {peak} kB")
EOF
