#!/usr/bin/env bash
# Paired A/B of two tollgate builds: both run at the same time, each with
# `workers: 1` in front of its own 1-worker nginx and under its own load
# generator, so whatever else the shared machine is doing hits both alike.
# Per round: CPU µs per request (utime + stime / requests answered) and
# requests/s of each, and B/A; then the median B/A. Loopback only.
#
# Usage: benches/pair.sh BINARY_A BINARY_B
#   MODE=h2 (default: h2load -c32 -m10 over TLS) | h1 (wrk -t1 -c32, signed
#   URL) | jwt (wrk, cached bearer JWT) | token, signed (the segment storm:
#   wrk -t1 -c64 over 16 segments of 100 KiB, under one path token or one
#   signed URL each); ROUNDS (default 7) of 5 s; SIZE of the file in bytes
#   (default 1024). MODE_B gives B a load of its own (default MODE): one
#   build under two loads, e.g. MODE=token MODE_B=signed pair.sh T T.
set -euo pipefail
A=$(realpath $1); B=$(realpath $2); mode=${MODE:-h2}; mode_b=${MODE_B:-$mode}; rounds=${ROUNDS:-7}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
w=$(mktemp -d); chmod 755 $w; cd $w
mkdir -p www/f/seg tmp; head -c ${SIZE:-1024} /dev/urandom > www/f/file.bin; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost -keyout tls.key -out tls.crt 2>/dev/null
trap 'kill $(cat $w/pids 2>/dev/null) 2>/dev/null; rm -rf $w' EXIT
start() { # bin mode -> "port pid"
  local NG=$(port) P=$(port) AD=$(port) d=$w/$RANDOM
  mkdir -p $d/tmp
  cat > $d/nginx.conf <<N
worker_processes 1; pid $d/nginx.pid; error_log $d/err.log warn; events { worker_connections 4096; }
http { access_log off; client_body_temp_path $d/tmp/b; proxy_temp_path $d/tmp/p; fastcgi_temp_path $d/tmp/f; uwsgi_temp_path $d/tmp/u; scgi_temp_path $d/tmp/s;
keepalive_requests 1000000; server { listen 127.0.0.1:$NG; root $w/www; } }
N
  /usr/sbin/nginx -p $d -c $d/nginx.conf -g 'daemon off;' & echo $! >> $w/pids
  cat > $d/t.yaml <<Y
listen: 127.0.0.1:$P
admin: 127.0.0.1:$AD
workers: 1
keys: { k: { hmac: { secret_file: $w/key } } }
upstreams: { nginx: { url: "http://127.0.0.1:$NG" } }
routes: [ { name: f, prefix: /f/, upstream: nginx, auth: { signed_url: { keys: [k], path_tokens: true }, jwt: { keys: [k] } } } ]
log: { access_log: false }
reload: { watch: false }
Y
  [ $2 != h2 ] || echo "tls: { cert_file: $w/tls.crt, key_file: $w/tls.key }" >> $d/t.yaml
  $1 serve --config $d/t.yaml 2>/dev/null & echo $! >> $w/pids
  echo "$P $!"
}
read PA pa < <(start $A $mode); read PB pb < <(start $B $mode_b)
sleep 0.7
u=$($A sign --key-file key --ttl 1h /f/file.bin); tok=$($A token --key-file key --ttl 1h --sub x)
case " $mode $mode_b " in *" token "*|*" signed "*) # the segment storm's files and links
  seg=$($A sign --key-file key --ttl 1h --path-token --prefix /f/seg/ /f/seg/1.ts); seg=${seg%/1.ts}
  for i in $(seq 16); do
    head -c 102400 /dev/urandom > www/f/seg/$i.ts
    echo "$seg/$i.ts" >> token.txt; $A sign --key-file key --ttl 1h /f/seg/$i.ts >> signed.txt
  done
  cat > storm.lua <<'EOF'
local paths, n = {}, 0
init = function(args) for line in io.lines(args[1]) do paths[#paths + 1] = line end end
request = function() n = n % #paths + 1; return wrk.format("GET", paths[n]) end
EOF
esac
clk=$(getconf CLK_TCK)
cpu() { sed 's/^.*) //' /proc/$1/stat | awk -v c=$clk '{printf "%.4f", ($12+$13)/c}'; }
load() { # port seconds mode -> requests
  case $3 in
    h2) h2load -c32 -m10 -D $2 "https://127.0.0.1:$1$u" | awk '/^status codes:/ {print $3}';;
    h1) wrk -t1 -c32 -d${2}s "http://127.0.0.1:$1$u" | awk '/requests in/ {print $1}';;
    jwt) wrk -t1 -c32 -d${2}s -H "Authorization: Bearer $tok" "http://127.0.0.1:$1/f/file.bin" | awk '/requests in/ {print $1}';;
    token|signed) wrk -t1 -c64 -d${2}s -s storm.lua "http://127.0.0.1:$1" -- $3.txt | awk '/requests in/ {print $1}';;
  esac
}
load $PA 1 $mode >/dev/null & load $PB 1 $mode_b >/dev/null; wait
for r in $(seq $rounds); do
  a0=$(cpu $pa); b0=$(cpu $pb)
  load $PA 5 $mode > na & load $PB 5 $mode_b > nb; wait
  a1=$(cpu $pa); b1=$(cpu $pb)
  python3 -c "na=$(cat na); nb=$(cat nb); a=($a1-$a0)*1e6/na; b=($b1-$b0)*1e6/nb; print(f'round $r: A {a:.1f} us/req {na/5:,.0f}/s  B {b:.1f} us/req {nb/5:,.0f}/s  B/A {b/a:.3f}')"
done | tee $w/rounds
sort -n -k 12 $w/rounds | awk '{r[NR]=$NF} END {print "median B/A CPU per request: " r[int((NR+1)/2)] " over " NR " rounds"}'
