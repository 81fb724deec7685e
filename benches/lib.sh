# Helpers the loopback benchmark scripts share (sourced, not run).

# A free loopback port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (10 s at most) until something listens on loopback port $1.
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: port $1 never opened" >&2; exit 1
}

# CPU time (user + system) process $1 has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Reads wrk's output on stdin: "rps p50_ms p99_ms cpu_us_per_request",
# the CPU from $1 ticks spent over the run.
wrk_summary() {
  awk -v ticks="$1" -v hz="$(getconf CLK_TCK)" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    / requests in / { n = $1 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f %.1f\n", rps, p50, p99, ticks / hz * 1e6 / n }'
}

# The median line of stdin by its first field.
median() { sort -n -k1,1 | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }'; }

# Installs the Debian packages named, if any (root, or sudo), keeping their
# services from starting (they would bind the ports other runs use).
apt_install() {
  [ $# -gt 0 ] || return 0
  local sudo="" policy=/usr/sbin/policy-rc.d made=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench: installing $*" >&2
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null; $sudo chmod +x $policy; made=1; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  [ -z "$made" ] || $sudo rm -f $policy
}
