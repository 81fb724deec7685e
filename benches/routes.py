#!/usr/bin/env python3
"""Writes a tollgate config with N routes, one per tenant, for the scale
benchmark (benches/scale.sh).

Usage: routes.py N MODE LISTEN ADMIN UPSTREAM [--keyed] > tollgate.yaml

MODE prefix: route i is `/t<i>/` on any host. MODE host: route i is `/` on
host `t<i>.example`. Every route is `auth: none` (the rows measure lookup,
not verification) unless --keyed, where each route verifies signed URLs
with a key of its own (the memory-per-route row: a multi-tenant table
carries a key per tenant). The key files are written beside the config
(key-<i> in the directory named by KEYDIR, default "keys").
"""
import os
import sys


def main() -> None:
    n, mode, listen, admin, upstream = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    keyed = "--keyed" in sys.argv
    keydir = os.environ.get("KEYDIR", "keys")
    out = [
        f"listen: {listen}",
        f"admin: {admin}",
        "workers: 1",
        f'upstreams:\n  origin: {{ url: "{upstream}" }}',
        "log: { access_log: false }",
        "reload: { watch: false }",
    ]
    if keyed:
        out.append("keys:")
        for i in range(n):
            out.append(f"  k{i}: {{ hmac: {{ secret_file: {keydir}/k{i} }} }}")
    out.append("routes:")
    for i in range(n):
        auth = f"{{ signed_url: {{ keys: [k{i}] }} }}" if keyed else "none"
        where = f"host: t{i}.example, prefix: /" if mode == "host" else f"prefix: /t{i}/"
        out.append(f"  - {{ name: t{i}, {where}, upstream: origin, auth: {auth} }}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
