#!/usr/bin/env bash
# Installs everything the test suite runs against, on a fresh Debian machine:
# nginx (Debian nginx-light), promtool (Debian prometheus), openssl, a Python
# venv (.venv: PyJWT, moto) and npm's jsonwebtoken (tests/js). Idempotent.
# Any failure is fatal: the suite never skips a missing dependency.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

apt_packages=()
[ -x /usr/sbin/nginx ] || apt_packages+=(nginx-light)
command -v promtool >/dev/null || apt_packages+=(prometheus)
command -v openssl >/dev/null || apt_packages+=(openssl)
command -v node >/dev/null || apt_packages+=(nodejs npm)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "setup: installing ${apt_packages[*]}"
  # Keep the packages' own services from starting (they would bind :80/:9090).
  policy=/usr/sbin/policy-rc.d
  created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  if [ -n "$created_policy" ]; then $sudo rm -f "$policy"; fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt

if [ ! -d tests/js/node_modules/jsonwebtoken ]; then
  echo "setup: installing npm packages"
  (cd tests/js && npm ci --silent --no-audit --no-fund)
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked --quiet
fi
echo "setup: done"
