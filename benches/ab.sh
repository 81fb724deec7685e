#!/usr/bin/env bash
# A/B of tollgate builds: CPU µs per request (utime + stime of the tollgate
# process over the run / requests answered) and requests/s, `workers: 1`, in
# front of one nginx, for HTTP/1.1 signed URLs, HTTP/1.1 cached JWTs
# (wrk -t1 -c32) and HTTP/2 over TLS signed URLs (h2load -c32 -m10), 1 KiB
# file, 5 s runs, the binaries alternated for ROUNDS (default 5) rounds.
# Loopback only.
#
# Usage: benches/ab.sh BINARY_A BINARY_B [...]   (e.g. a copy of the previous
# target/release/tollgate, and the current one); TESTS="h1 jwt h2" picks
# the rows (default all three).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: benches/ab.sh BINARY..." >&2; exit 2; }
set -- $(realpath "$@")
rounds=${ROUNDS:-5}
tests=" ${TESTS:-h1 jwt h2} "
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NG=$(port); P1=$(port); A1=$(port); P2=$(port); A2=$(port)
w=$(mktemp -d); cd $w; chmod 755 $w
for b in "$@"; do [ -x "$b" ] || { echo "ab: $b is not executable" >&2; exit 2; }; done
mkdir -p www/f tmp; head -c 1024 /dev/urandom > www/f/file.bin
head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost -keyout tls.key -out tls.crt 2>/dev/null
cat > nginx.conf <<N
worker_processes 1; pid $w/nginx.pid; error_log $w/err.log warn; events { worker_connections 4096; }
http { access_log off; client_body_temp_path $w/tmp/b; proxy_temp_path $w/tmp/p; fastcgi_temp_path $w/tmp/f; uwsgi_temp_path $w/tmp/u; scgi_temp_path $w/tmp/s;
keepalive_requests 1000000; server { listen 127.0.0.1:$NG; root $w/www; } }
N
/usr/sbin/nginx -p $w -c $w/nginx.conf -g 'daemon off;' & np=$!
tp=""; trap 'kill $np $tp 2>/dev/null; rm -rf "$w"' EXIT
conf() { cat <<Y
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
workers: 1
keys: { k: { hmac: { secret_file: key } } }
upstreams: { nginx: { url: "http://127.0.0.1:$NG" } }
routes: [ { name: f, prefix: /f/, upstream: nginx, auth: { signed_url: { keys: [k] }, jwt: { keys: [k] } } } ]
log: { access_log: false }
reload: { watch: false }
Y
[ -z "${3:-}" ] || echo "tls: { cert_file: tls.crt, key_file: tls.key }"; }
conf $P1 $A1 > plain.yaml; conf $P2 $A2 tls > tls.yaml
clk=$(getconf CLK_TCK)
cpu() { sed 's/^.*) //' /proc/$1/stat | awk -v c=$clk '{printf "%.4f", ($12+$13)/c}'; }
u=$("$1" sign --key-file key --ttl 1h /f/file.bin)
tok=$("$1" token --key-file key --ttl 1h --sub x)
for round in $(seq "$rounds"); do
  for b in "$@"; do
    $b serve --config plain.yaml 2>/dev/null & p1=$!
    $b serve --config tls.yaml 2>/dev/null & p2=$!; tp="$p1 $p2"
    sleep 0.5
    wrk -t1 -c32 -d1s "http://127.0.0.1:$P1$u" >/dev/null; h2load -c32 -m10 -D 1 "https://127.0.0.1:$P2$u" >/dev/null
    line="round $round $(basename $b):"
    if [[ $tests == *" h1 "* ]]; then
      c0=$(cpu $p1); out=$(wrk -t1 -c32 -d5s "http://127.0.0.1:$P1$u"); c1=$(cpu $p1)
      n=$(awk '/requests in/ {print $1}' <<<"$out"); r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      line+=" h1 signed $(python3 -c "print(f'{($c1-$c0)*1e6/$n:.1f} us/req {float($r):,.0f} req/s')") |"
    fi
    if [[ $tests == *" jwt "* ]]; then
      c0=$(cpu $p1); out=$(wrk -t1 -c32 -d5s -H "Authorization: Bearer $tok" "http://127.0.0.1:$P1/f/file.bin"); c1=$(cpu $p1)
      n=$(awk '/requests in/ {print $1}' <<<"$out"); r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      line+=" h1 jwt $(python3 -c "print(f'{($c1-$c0)*1e6/$n:.1f} us/req {float($r):,.0f} req/s')") |"
    fi
    if [[ $tests == *" h2 "* ]]; then
      c0=$(cpu $p2); out=$(h2load -c32 -m10 -D 5 "https://127.0.0.1:$P2$u"); c1=$(cpu $p2)
      n=$(awk '/^status codes:/ {print $3}' <<<"$out"); r=$(awk '/^finished in/ {print $4}' <<<"$out")
      line+=" h2 tls signed $(python3 -c "print(f'{($c1-$c0)*1e6/$n:.1f} us/req {float($r):,.0f} req/s')") |"
    fi
    echo "${line% |}"
    kill $p1 $p2; wait $p1 $p2 2>/dev/null || true; tp=""
  done
done
