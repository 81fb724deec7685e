#!/usr/bin/env bash
# Soak under faults (issue 16): tollgate in front of a real nginx for
# [minutes] (default 10), with mixed traffic and the system kept under churn.
#
# Traffic (benches/soak.py load, one Python process, capped at SOAK_RATE
# requests/s over SOAK_CONNS keep-alive connections so it leaves the CPUs to
# the programs under test):
#   valid: signed URLs (kid ka, then ka+kb, then kb), HS256 JWTs reused
#          (cached verdicts) and minted per request (uncached), RS256 JWTs
#          from the JWKS endpoint                                  -> 200
#   invalid: expired links, forged links (403), no credential, expired and
#          forged JWTs (401)                                       -> that code
#   path tokens (docs/reference.md: Path tokens) under the same rotating keys       -> 200, forged -> 403
#   one-time links (README: One-time and limited links) counted in a real redis-server: first use -> 200,
#          replay of a used link -> 410
# Churn (benches/soak.py churn):
#   tollgate config reload (SIGHUP) every 5 s, once a bad config that must be
#   refused while serving goes on; nginx graceful reload every 3 s and one
#   stop (5 s down) and start; an HMAC key rotation ka -> kb with both valid
#   in between; the JWKS endpoint failing (503) for 20 s (refresh 10s, so two or
#   more fetches fail).
# Recorded every second (benches/soak.py sample): tollgate's RSS, open FDs,
# ESTABLISHED sockets from tollgate to nginx's port (its pool), and its
# metrics counters.
# Pass: zero failed answers to valid requests outside the nginx-stopped
# window (inside it: 502s only); every invalid request refused with its
# code; RSS and FD trends flat within 10% after warm-up; tollgate's
# tollgate_requests_total equal to the requests the generator sent.
# Prints one summary line; writes target/soak/soak.png (RSS, FDs, pooled
# connections, requests/s over time) and target/soak/soak-details.txt.
# Loopback only, bounded: minutes + about 1 minute of set-up. Not part of CI.
#
# Usage: benches/soak.sh [minutes (default 10)]
#   env: SOAK_RATE (default 800 requests/s), SOAK_CONNS (default 8)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
minutes=${1:-10}
secs=$(python3 -c "print(int(float('$minutes') * 60))")
[ "$secs" -ge 60 ] && [ "$secs" -le 7200 ] || { echo "soak: minutes must be between 1 and 120" >&2; exit 2; }
rate=${SOAK_RATE:-800}
conns=${SOAK_CONNS:-8}
out=$root/target/soak

source "$root/benches/lib.sh"
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v redis-server >/dev/null || need+=(redis-server)
command -v openssl >/dev/null || need+=(openssl)
apt_install ${need[@]+"${need[@]}"}
cargo build --release --locked -q
bin=$root/target/release/tollgate
py="python3 $root/benches/soak.py"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  mkdir -p "$out"
  for f in tollgate.log events samples.csv load.json churn.json; do [ ! -f "$work/$f" ] || cp "$work/$f" "$out/"; done
  [ -f "$work/nginx.pid" ] && /usr/sbin/nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/www/f" "$work/tmp"
for i in $(seq 16); do head -c 1024 /dev/urandom > "$work/www/f/$i.bin"; done
mkdir -p "$work/www/o"; cp "$work"/www/f/*.bin "$work/www/o/"
# Keys generated per run, never written outside $work.
for k in ka kb kj; do head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/$k.key"; done
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/idp.pem" 2>/dev/null
modulus=$(openssl rsa -in "$work/idp.pem" -noout -modulus | cut -d= -f2)
python3 - "$modulus" > "$work/jwks.json" <<'EOF'
import base64, json, sys
n = bytes.fromhex(sys.argv[1])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
print(json.dumps({"keys": [{"kty": "RSA", "kid": "idp1", "alg": "RS256", "use": "sig", "n": b64(n), "e": "AQAB"}]}))
EOF
NG=$(port); JW=$(port); TG=$(port); TGA=$(port); RD=$(port)
redis-server --port "$RD" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir "$work" >/dev/null & pids+=($!)
export TOLLGATE_REDIS_URL="redis://127.0.0.1:$RD"

cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp/b; proxy_temp_path $work/tmp/p; fastcgi_temp_path $work/tmp/f;
  uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;
  server { listen 127.0.0.1:$NG; root $work/www; }
}
EOF
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf"   # master + worker, daemonized, as deployed
$py jwks "$work" "$JW" & pids+=($!)

# @SIGNING@ and @GEN@ are filled in by the churn (key rotation, a new
# generation per reload).
cat > "$work/tollgate.yaml.in" <<EOF
# generation @GEN@
listen: 127.0.0.1:$TG
admin: 127.0.0.1:$TGA
keys:
  ka: { hmac: { secret_file: ka.key, encoding: hex } }
  kb: { hmac: { secret_file: kb.key, encoding: hex } }
  kj: { hmac: { secret_file: kj.key, encoding: hex } }
  idp: { jwks_url: "http://127.0.0.1:$JW/jwks.json", refresh: 10s, refetch_cooldown: 5s }
upstreams:
  nginx: { url: "http://127.0.0.1:$NG" }
routes:
  - name: files
    prefix: /f/
    upstream: nginx
    auth:
      signed_url: { keys: [@SIGNING@], path_tokens: true }
      jwt: { keys: [kj, idp], leeway: 0s }
  - name: once
    prefix: /o/
    upstream: nginx
    auth:
      signed_url: { keys: [@SIGNING@], max_ttl: 1h }
      use_limit: { uses: 1, grace: 0s }
store: { redis: { url_env: TOLLGATE_REDIS_URL } }
log: { access_log: false }
reload: { watch: false }
EOF
sed -e 's/@SIGNING@/ka/' -e 's/@GEN@/0/' "$work/tollgate.yaml.in" > "$work/tollgate.yaml"
"$bin" serve --config "$work/tollgate.yaml" 2>"$work/tollgate.log" & tg_pid=$!; pids+=($tg_pid)
wait_port "$RD"; wait_port "$NG"; wait_port "$JW"; wait_port "$TG"; wait_port "$TGA"
for _ in $(seq 100); do
  [ "$(python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$TGA/readyz').status)" 2>/dev/null)" = 200 ] && break
  sleep 0.1
done

# Credentials, made with tollgate's own signer.
ttl="$((minutes + 60))m"
python3 - "$bin" "$work" "$ttl" > "$work/credentials.json" <<'EOF'
import json, subprocess, sys, time
bin, work, ttl = sys.argv[1:]
run = lambda *a: subprocess.run([bin, *a], check=True, capture_output=True, text=True).stdout.strip()
hmac = lambda k: ["--key-file", f"{work}/{k}.key", "--key-encoding", "hex"]
files = [f"/f/{i}.bin" for i in range(1, 17)]
print(json.dumps({
    "files": files,
    "links": {k: [run("sign", *hmac(k), "--kid", k, "--ttl", ttl, f) for f in files] for k in ("ka", "kb")},
    "expired_links": [run("sign", *hmac("ka"), "--kid", "ka", "--exp", str(int(time.time()) - 60), f) for f in files],
    "jwt_cached": [run("token", *hmac("kj"), "--kid", "kj", "--ttl", ttl, "--sub", f"soak-{i}") for i in range(16)],
    "jwt_jwks": [run("token", "--private-key", f"{work}/idp.pem", "--alg", "RS256", "--kid", "idp1", "--ttl", ttl,
                     "--sub", f"soak-{i}") for i in range(16)],
}))
EOF
echo ka > "$work/phase"

echo "soak: $minutes min, $rate requests/s over $conns connections; tollgate pid $tg_pid, nginx :$NG" >&2
$py sample "$work" "$tg_pid" "$TGA" "$NG" & sampler=$!; pids+=($sampler)
$py load "$work" "$TG" "$secs" "$rate" "$conns" & load=$!; pids+=($load)
$py churn "$work" "$secs" "$TGA" "$tg_pid" "$NG"
wait "$load"
sleep 2   # two more samples after the last request
touch "$work/sample-stop"; wait "$sampler" || true
warmup=$(( secs / 5 < 60 ? secs / 5 : 60 ))
$py report "$work" "$out" "$TGA" "$warmup"
