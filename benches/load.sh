#!/usr/bin/env bash
# Loopback load benchmark: tollgate against the peers users would otherwise
# pick, all in front of the same nginx, measured in one run.
#
#   nginx direct                 the floor: nginx serving the file itself
#   nginx secure_link            MD5 link + expiry, proxying to nginx
#   HAProxy jwt_verify           HS256 bearer, exp checked, Authorization removed
#   tollgate signed URL          -> nginx
#   tollgate JWT bearer          -> nginx (verdict cached after the first request)
#   tollgate signed URL, access log on (the default; the rows above log nothing)
#   tollgate signed URL with one worker thread (the others: one per CPU)
#
# Same 1 KiB file, same wrk settings (-t1 -c32, fixed duration), rounds
# alternated so drift hits every row alike; the median round is reported.
# Every peer is first shown to refuse a bad credential. Then: a 100 MiB
# download through tollgate vs nginx and vs the S3 server (moto), tollgate's
# RSS idle / with 1000 open keep-alive connections / after 10^6 distinct
# invalid tokens. Loopback only, bounded in time (about 4 minutes).
#
# Usage: benches/load.sh [seconds-per-run (default 5)] [rounds (default 3)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-5}
rounds=${2:-3}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  policy=/usr/sbin/policy-rc.d; made=""
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null; $sudo chmod +x $policy; made=1; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$made" ] || $sudo rm -f $policy
fi
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
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: port $1 never opened" >&2; tail -n 5 "$work"/*.log >&2 || true; exit 1
}

chmod 755 "$work"
mkdir -p "$work/www/f" "$work/tmp"
head -c 1024 /dev/urandom > "$work/www/f/file.bin"
head -c $((100 * 1024 * 1024)) /dev/zero > "$work/www/f/big.bin"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')   # 64 hex chars, generated per run
printf '%s' "$secret" > "$work/key"
BK=$(port); SL=$(port); HA=$(port); TG=$(port); TGA=$(port); TL=$(port); TLA=$(port); T1=$(port); T1A=$(port)

cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path $work/tmp/b; proxy_temp_path $work/tmp/p; fastcgi_temp_path $work/tmp/f;
  uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BK; keepalive 64; }
  server { listen 127.0.0.1:$BK; root $work/www; }
  server {
    listen 127.0.0.1:$SL;
    location / {
      secure_link \$arg_md5,\$arg_expires;
      secure_link_md5 "\$secure_link_expires\$uri $secret";
      if (\$secure_link = "") { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

cat > "$work/haproxy.cfg" <<EOF
global
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$HA
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
/usr/sbin/haproxy -q -f "$work/haproxy.cfg" & pids+=($!)

tg_config() { # listen admin access_log [workers]
  cat <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
workers: ${4:-$(nproc)}
keys:
  k: { hmac: { secret_file: key } }
upstreams:
  nginx: { url: "http://127.0.0.1:$BK" }
routes:
  - { name: f, prefix: /f/, upstream: nginx, auth: { signed_url: { keys: [k] }, jwt: { keys: [k], leeway: 0s } } }
log: { access_log: $3 }
reload: { watch: false }
EOF
}
tg_config "$TG" "$TGA" false > "$work/tollgate.yaml"
tg_config "$TL" "$TLA" true > "$work/tollgate-log.yaml"
tg_config "$T1" "$T1A" false 1 > "$work/tollgate-1.yaml"
"$bin" serve --config "$work/tollgate.yaml" 2>"$work/tollgate.log" & tg_pid=$!; pids+=($tg_pid)
"$bin" serve --config "$work/tollgate-log.yaml" 2>/dev/null & pids+=($!)
"$bin" serve --config "$work/tollgate-1.yaml" 2>/dev/null & pids+=($!)
for p in $BK $SL $HA $TG $TL $T1; do wait_port "$p"; done

exp=$(( $(date +%s) + 3600 ))
md5=$(printf '%s' "${exp}/f/file.bin $secret" | openssl md5 -binary | openssl base64 | tr '+/' '-_' | tr -d '=')
signed=$(TOLLGATE_KEY="$secret" "$bin" sign --ttl 1h /f/file.bin)
token=$(TOLLGATE_KEY="$secret" "$bin" token --ttl 1h --sub bench)
expired=$(TOLLGATE_KEY="$secret" "$bin" token --ttl 0s --sub bench)
sleep 1

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# Flips the first character of the signature (a JWT's last segment, or the
# sig= value): the last character may only carry padding bits that lenient
# base64 decoders ignore.
forge() {
  local s=$1 head sig
  if [[ $s == *"sig="* ]]; then head=${s%%sig=*}sig=; sig=${s#*sig=}; else head=${s%.*}.; sig=${s##*.}; fi
  local first=A; [ "${sig:0:1}" = A ] && first=B
  echo "${head}${first}${sig:1}"
}
check() { # expected, description, curl args...
  local want=$1 what=$2; shift 2
  local got; got=$(code "$@")
  [ "$got" = "$want" ] || { echo "bench: $what answered $got, expected $want" >&2; exit 1; }
}
check 200 "nginx direct" "http://127.0.0.1:$BK/f/file.bin"
check 200 "secure_link valid" "http://127.0.0.1:$SL/f/file.bin?md5=$md5&expires=$exp"
check 403 "secure_link forged" "http://127.0.0.1:$SL/f/file.bin?md5=AAAAAAAAAAAAAAAAAAAAAA&expires=$exp"
check 403 "secure_link other file" "http://127.0.0.1:$SL/f/big.bin?md5=$md5&expires=$exp"
check 200 "haproxy valid" -H "Authorization: Bearer $token" "http://127.0.0.1:$HA/f/file.bin"
check 401 "haproxy forged" -H "Authorization: Bearer $(forge "$token")" "http://127.0.0.1:$HA/f/file.bin"
check 401 "haproxy expired" -H "Authorization: Bearer $expired" "http://127.0.0.1:$HA/f/file.bin"
check 401 "haproxy missing" "http://127.0.0.1:$HA/f/file.bin"
check 200 "tollgate signed" "http://127.0.0.1:$TG$signed"
check 403 "tollgate forged" "http://127.0.0.1:$TG$(forge "$signed")"
check 200 "tollgate jwt" -H "Authorization: Bearer $token" "http://127.0.0.1:$TG/f/file.bin"
check 401 "tollgate jwt forged" -H "Authorization: Bearer $(forge "$token")" "http://127.0.0.1:$TG/f/file.bin"
check 401 "tollgate jwt expired" -H "Authorization: Bearer $expired" "http://127.0.0.1:$TG/f/file.bin"
echo "bench: every peer verifies (bad credentials refused)" >&2

names=("nginx direct" "nginx secure_link" "HAProxy jwt_verify" "tollgate signed URL" "tollgate JWT bearer (cached)"
       "tollgate signed URL, access log on" "tollgate signed URL, workers: 1")
urls=("http://127.0.0.1:$BK/f/file.bin" "http://127.0.0.1:$SL/f/file.bin?md5=$md5&expires=$exp" "http://127.0.0.1:$HA/f/file.bin"
      "http://127.0.0.1:$TG$signed" "http://127.0.0.1:$TG/f/file.bin" "http://127.0.0.1:$TL$signed" "http://127.0.0.1:$T1$signed")
heads=("" "" "Authorization: Bearer $token" "" "Authorization: Bearer $token" "" "")

for i in "${!names[@]}"; do
  args=("${urls[$i]}")
  [ -z "${heads[$i]}" ] || args=(-H "${heads[$i]}" "${urls[$i]}")
  check 200 "${names[$i]}" "${args[@]}"
done

# Warm every target up (connection pools, page cache, first allocations).
for i in "${!names[@]}"; do
  args=(-t1 -c32 -d2s)
  [ -z "${heads[$i]}" ] || args+=(-H "${heads[$i]}")
  wrk "${args[@]}" "${urls[$i]}" >/dev/null
done

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else {sub(/s$/,"",v); print v*1000}}'; }
: > "$work/results"
for r in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    args=(-t1 -c32 -d"${secs}s" --latency)
    [ -z "${heads[$i]}" ] || args+=(-H "${heads[$i]}")
    out=$(wrk "${args[@]}" "${urls[$i]}")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
    p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -z "$errors" ] || { echo "bench: ${names[$i]}: $errors" >&2; exit 1; }
    echo "$i $rps $p50 $p99" >> "$work/results"
    echo "bench: round $r ${names[$i]}: $rps req/s" >&2
  done
done

python3 - "$work/results" "${names[@]}" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    i, rps, p50, p99 = line.split()
    rows.setdefault(int(i), []).append((float(rps), float(p50), float(p99)))
names = sys.argv[2:]
med = {i: sorted(v)[len(v) // 2] for i, v in rows.items()}
direct, haproxy, sl = med[0][0], med[2][0], med[1][0]
print("| setup | requests/s | p50 ms | p99 ms | × nginx direct | × HAProxy jwt_verify | × nginx secure_link |")
print("|---|---:|---:|---:|---:|---:|---:|")
for i, name in enumerate(names):
    rps, p50, p99 = med[i]
    print(f"| {name} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {rps/direct:.2f} | {rps/haproxy:.2f} | {rps/sl:.2f} |")
EOF

# 100 MiB streamed download: one warm-up each, then 5 alternated, median.
speed() { curl -s -o /dev/null -w '%{speed_download}' "$@"; }
big_signed=$(TOLLGATE_KEY="$secret" "$bin" sign --ttl 1h /f/big.bin)
speed "http://127.0.0.1:$BK/f/big.bin" >/dev/null; speed "http://127.0.0.1:$TG$big_signed" >/dev/null
d=(); t=()
for _ in 1 2 3 4 5; do
  d+=("$(speed "http://127.0.0.1:$BK/f/big.bin")")
  t+=("$(speed "http://127.0.0.1:$TG$big_signed")")
done
python3 - "${d[@]}" "${t[@]}" <<'EOF'
import statistics, sys
v = [float(x) for x in sys.argv[1:]]
d, t = statistics.median(v[:5]), statistics.median(v[5:])
print(f"\n100 MiB download, nginx direct {d/2**20:,.0f} MiB/s, through tollgate {t/2**20:,.0f} MiB/s: ratio {t/d:.2f}")
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
