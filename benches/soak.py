#!/usr/bin/env python3
"""Parts of benches/soak.sh (standard library only):

  jwks    a JWKS endpoint that answers 503 while <work>/jwks-down exists
  load    the load generator: mixed valid and invalid requests over keep-alive
          connections at a capped rate, every answer checked against the
          code its kind must get
  sample  one line a second: tollgate's RSS, open FDs, pooled upstream
          connections, and its metrics counters
  churn   the faults: tollgate reloads (one bad config), nginx reloads and one
          stop/start, an HMAC key rotation, a JWKS outage
  report  the pass criteria, one summary line, and the plot (gnuplot)
"""
import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request

# ---------------------------------------------------------------- shared


def jpath(work, name):
    return os.path.join(work, name)


def event(work, what):
    with open(jpath(work, "events"), "a") as f:
        f.write(f"{time.time():.3f} {what}\n")


def metrics(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def total(m, prefix, **labels):
    s = 0.0
    for k, v in m.items():
        if k.startswith(prefix + "{") or k == prefix:
            if all(f'{lk}="{lv}"' in k for lk, lv in labels.items()):
                s += v
    return s


# ---------------------------------------------------------------- jwks


def cmd_jwks(work, port):
    body = open(jpath(work, "jwks.json"), "rb").read()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if os.path.exists(jpath(work, "jwks-down")):
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()


# ---------------------------------------------------------------- load

VALID = ["signed_url", "path_token", "one_time", "jwt_cached", "jwt_uncached", "jwt_jwks"]
# kind -> expected status; valid kinds expect 200
EXPECT = {
    "signed_url": 200,
    "jwt_cached": 200,
    "jwt_uncached": 200,
    "jwt_jwks": 200,
    "expired_link": 403,
    "forged_link": 403,
    "no_credential": 401,
    "expired_jwt": 401,
    "forged_jwt": 401,
    "path_token": 200,
    "forged_path_token": 403,
    # One-time links counted in Redis (README: One-time and limited links): a fresh id's first use,
    # and a replay of a link that was answered 200 before.
    "one_time": 200,
    "one_time_replay": 410,
}
MIX = (["signed_url"] * 25 + ["path_token"] * 10 + ["one_time"] * 6 + ["one_time_replay"] * 2 + ["forged_path_token"] * 3 + ["jwt_cached"] * 20 + ["jwt_uncached"] * 10 + ["jwt_jwks"] * 15
       + ["expired_link"] * 5 + ["forged_link"] * 5 + ["no_credential"] * 5 + ["expired_jwt"] * 5
       + ["forged_jwt"] * 5)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256(secret, claims, kid):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def path_token(secret, kid, exp, prefix, rest):
    """A path token (docs/reference.md: Path tokens) granting `prefix`, written after it."""
    to_sign = "\n".join(["TOLLGATE-HMAC-SHA256-PATH", "GET", str(exp), kid, prefix, ""])
    sig = b64(hmac.new(secret, to_sign.encode(), hashlib.sha256).digest())
    return f"{prefix}tg~{exp}~{kid}~{sig}/{rest}"


def one_time_link(secret, kid, exp, path, jti):
    """A signed URL with a `jti` (bound through the canonical query)."""
    to_sign = "\n".join(["TOLLGATE-HMAC-SHA256", "GET", str(exp), kid, path, f"jti={jti}"])
    sig = b64(hmac.new(secret, to_sign.encode(), hashlib.sha256).digest())
    return f"{path}?jti={jti}&exp={exp}&kid={kid}&sig={sig}"


def forge(s):
    """Flips the first character of a signature (sig= value or JWT's last segment)."""
    if "sig=" in s:
        head, sig = s.split("sig=", 1)
        head += "sig="
    else:
        head, _, sig = s.rpartition(".")
        head += "."
    return head + ("B" if sig[0] == "A" else "A") + sig[1:]


class Load:
    def __init__(self, work, port, seconds, rate, conns):
        self.work, self.port, self.seconds, self.rate, self.conns = work, int(port), seconds, rate, conns
        c = json.load(open(jpath(work, "credentials.json")))
        self.links = c["links"]  # kid -> [signed targets]
        self.expired_links = c["expired_links"]
        self.jwt_cached = c["jwt_cached"]
        self.jwt_jwks = c["jwt_jwks"]
        self.files = c["files"]
        self.jwt_secret = bytes.fromhex(open(jpath(work, "kj.key")).read().strip())
        self.hmac_keys = {k: bytes.fromhex(open(jpath(work, f"{k}.key")).read().strip()) for k in ("ka", "kb")}
        self.used = {}  # kid -> one-time links answered 200 once (replays must be 410)
        self.used_set = set()
        self.kids = ["ka"]
        self.counts = {}  # (kind, status) -> n
        self.unexpected = []  # [t_send, t_done, kind, status or error]
        self.sent = 0  # requests written in full
        self.per_second = {}
        self.seq = 0

    def target(self, kind):
        self.seq += 1
        f = random.choice(self.files)
        now = int(time.time())
        if kind == "signed_url":
            return random.choice(self.links[random.choice(self.kids)]), None
        if kind == "expired_link":
            return random.choice(self.expired_links), None
        if kind == "forged_link":
            return forge(random.choice(self.links[self.kids[0]])), None
        if kind in ("path_token", "forged_path_token"):
            kid = random.choice(self.kids)
            url = path_token(self.hmac_keys[kid], kid, now + 600, "/f/", f[len("/f/"):])
            return (url if kind == "path_token" else url.replace("~" + kid + "~", "~" + kid + "~A", 1)), None
        # A replay is of a used link whose key is still served (after a
        # rotation a retired key's link is rightly 403 unknown_key).
        replayable = self.used.get(self.kids[-1], [])
        if kind == "one_time" or (kind == "one_time_replay" and not replayable):
            kid = random.choice(self.kids)
            jti = f"soak-{os.getpid()}-{self.seq}"
            return one_time_link(self.hmac_keys[kid], kid, now + 600, "/o/" + f[len("/f/"):], jti), None
        if kind == "one_time_replay":
            return random.choice(replayable), None
        if kind == "no_credential":
            return f, None
        if kind == "jwt_cached":
            return f, random.choice(self.jwt_cached)
        if kind == "jwt_uncached":
            return f, hs256(self.jwt_secret, {"sub": "soak", "jti": f"{os.getpid()}-{self.seq}", "exp": now + 600}, "kj")
        if kind == "jwt_jwks":
            return f, random.choice(self.jwt_jwks)
        if kind == "expired_jwt":
            return f, hs256(self.jwt_secret, {"sub": "soak", "exp": now - 3600}, "kj")
        if kind == "forged_jwt":
            return f, forge(random.choice(self.jwt_cached))
        raise ValueError(kind)

    async def watch_phase(self, stop):
        path, seen = jpath(self.work, "phase"), None
        while not stop.is_set():
            try:
                kids = open(path).read().split()
                if kids and kids != seen:
                    self.kids, seen = kids, kids
                    # In-flight requests signed with a retired kid finish
                    # within a timeout; say so after that.
                    await asyncio.sleep(0.5)
                    with open(path + ".ack", "w") as f:
                        f.write(" ".join(kids))
            except FileNotFoundError:
                pass
            await asyncio.sleep(0.2)

    async def worker(self, n, end):
        reader = writer = None
        next_t = time.time() + n * self.conns / self.rate / self.conns
        rnd = random.Random(n)
        while True:
            now = time.time()
            if now >= end:
                break
            if next_t > now:
                await asyncio.sleep(next_t - now)
            next_t += self.conns / self.rate
            kind = rnd.choice(MIX)
            target, token = self.target(kind)
            req = f"GET {target} HTTP/1.1\r\nHost: soak\r\n"
            if token:
                req += f"Authorization: Bearer {token}\r\n"
            req = (req + "\r\n").encode()
            t0 = time.time()
            status = None
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(req)
                await writer.drain()
                self.sent += 1
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length, close = 0, False
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    k = k.strip().lower()
                    if k == "content-length":
                        length = int(v)
                    elif k == "connection" and "close" in v.lower():
                        close = True
                if length:
                    await asyncio.wait_for(reader.readexactly(length), 10)
                if close:
                    writer.close()
                    reader = writer = None
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                status = status or f"error:{type(e).__name__}"
                if writer is not None:
                    writer.close()
                reader = writer = None
            t1 = time.time()
            if kind == "one_time_replay" and target not in self.used_set:
                kind = "one_time"  # nothing used yet: this was a first use
            if kind == "one_time" and status == 200:
                kid = target.split("&kid=", 1)[1].split("&", 1)[0]
                self.used.setdefault(kid, []).append(target)
                self.used_set.add(target)
            self.counts[(kind, status)] = self.counts.get((kind, status), 0) + 1
            sec = int(t1)
            self.per_second[sec] = self.per_second.get(sec, 0) + 1
            if status != EXPECT[kind]:
                self.unexpected.append([t0, t1, kind, status])
        if writer is not None:
            writer.close()

    async def run(self):
        stop = asyncio.Event()
        watcher = asyncio.create_task(self.watch_phase(stop))
        end = time.time() + self.seconds
        await asyncio.gather(*(self.worker(n, end) for n in range(self.conns)))
        stop.set()
        await watcher
        out = {
            "sent": self.sent,
            "answered": sum(self.counts.values()),
            "counts": [[k, s, n] for (k, s), n in sorted(self.counts.items(), key=str)],
            "unexpected": self.unexpected,
            "per_second": sorted(self.per_second.items()),
        }
        json.dump(out, open(jpath(self.work, "load.json"), "w"))


def cmd_load(work, port, seconds, rate, conns):
    asyncio.run(Load(work, port, float(seconds), float(rate), int(conns)).run())


# ---------------------------------------------------------------- sample


def pooled(pid, upstream_port):
    """ESTABLISHED TCP sockets of `pid` whose remote port is upstream_port."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    want = f":{int(upstream_port):04X}"
    n = 0
    for table in ("tcp", "tcp6"):
        try:
            rows = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[2].endswith(want) and f[3] == "01" and f[9] in inodes:
                n += 1
    return n


COLUMNS = ["t", "rss_kb", "fds", "pooled", "requests", "forwarded", "denied", "upstream_errors", "retries",
           "reloads_ok", "reloads_error", "jwks_ok", "jwks_error", "cache_hit", "cache_miss", "inflight"]


def cmd_sample(work, pid, admin, upstream_port):
    out = open(jpath(work, "samples.csv"), "w")
    out.write(" ".join(COLUMNS) + "\n")
    while os.path.exists(f"/proc/{pid}") and not os.path.exists(jpath(work, "sample-stop")):
        t = time.time()
        try:
            rss = int([ln.split()[1] for ln in open(f"/proc/{pid}/status") if ln.startswith("VmRSS")][0])
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            pool = pooled(pid, upstream_port)
            m = metrics(admin)
        except Exception as e:  # noqa: BLE001 - a missed sample is shown, not fatal
            print(f"sample: {e}", file=sys.stderr)
            time.sleep(1)
            continue
        row = [f"{t:.3f}", rss, fds, pool,
               int(total(m, "tollgate_requests_total")),
               int(total(m, "tollgate_requests_total", outcome="forwarded")),
               int(total(m, "tollgate_requests_total", outcome="denied")),
               int(total(m, "tollgate_upstream_errors_total")),
               int(total(m, "tollgate_upstream_retries_total")),
               int(total(m, "tollgate_config_reloads_total", result="ok")),
               int(total(m, "tollgate_config_reloads_total", result="error")),
               int(total(m, "tollgate_jwks_fetches_total", result="ok")),
               int(total(m, "tollgate_jwks_fetches_total", result="error")),
               int(total(m, "tollgate_verify_cache_total", result="hit")),
               int(total(m, "tollgate_verify_cache_total", result="miss")),
               int(total(m, "tollgate_inflight_requests"))]
        out.write(" ".join(map(str, row)) + "\n")
        out.flush()
        time.sleep(max(0.0, 1.0 - (time.time() - t)))


# ---------------------------------------------------------------- churn


class Churn:
    def __init__(self, work, seconds, admin, tg_pid, nginx_port):
        self.work, self.seconds, self.admin = work, float(seconds), admin
        self.tg_pid, self.nginx_port = int(tg_pid), int(nginx_port)
        self.signing = ["ka"]
        self.generation = 0
        self.failures = []
        self.nginx_up = True
        self.counts = {"tollgate_reloads": 0, "bad_config": 0, "nginx_reloads": 0, "nginx_restarts": 0,
                       "jwks_outages": 0}

    def write_config(self, bad=False):
        self.generation += 1
        keys = list(self.signing)
        if bad:
            keys.append("no-such-key")  # refused by the compiler: the old config keeps serving
        tpl = open(jpath(self.work, "tollgate.yaml.in")).read()
        text = tpl.replace("@SIGNING@", ", ".join(keys)).replace("@GEN@", str(self.generation))
        tmp = jpath(self.work, "tollgate.yaml.tmp")
        open(tmp, "w").write(text)
        os.replace(tmp, jpath(self.work, "tollgate.yaml"))

    def reload_tollgate(self, bad=False):
        result = "error" if bad else "ok"
        before = total(metrics(self.admin), "tollgate_config_reloads_total", result=result)
        self.write_config(bad)
        os.kill(self.tg_pid, 1)
        deadline = time.time() + 5
        while total(metrics(self.admin), "tollgate_config_reloads_total", result=result) <= before:
            if time.time() > deadline:
                self.failures.append(f"{time.time():.0f} tollgate reload ({result}) not seen")
                return
            time.sleep(0.05)
        self.counts["bad_config" if bad else "tollgate_reloads"] += 1
        event(self.work, "bad_config" if bad else "tollgate_reload")

    def nginx(self, *args):
        return subprocess.run(["/usr/sbin/nginx", "-p", self.work, "-c", jpath(self.work, "nginx.conf"), *args],
                              capture_output=True, text=True)

    def reload_nginx(self):
        r = self.nginx("-s", "reload")
        if r.returncode != 0:
            self.failures.append(f"nginx reload: {r.stderr.strip()}")
        else:
            self.counts["nginx_reloads"] += 1
            event(self.work, "nginx_reload")

    def port_open(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.nginx_port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop_nginx(self):
        event(self.work, "nginx_stop")
        self.nginx_up = False
        self.nginx("-s", "quit")
        deadline = time.time() + 10
        while self.port_open() and time.time() < deadline:
            time.sleep(0.05)

    def start_nginx(self):
        subprocess.Popen(["/usr/sbin/nginx", "-p", self.work, "-c", jpath(self.work, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not self.port_open():
            if time.time() > deadline:
                self.failures.append("nginx did not come back")
                return
            time.sleep(0.02)
        self.nginx_up = True
        self.counts["nginx_restarts"] += 1
        event(self.work, "nginx_started")

    def set_phase(self, kids):
        open(jpath(self.work, "phase"), "w").write(" ".join(kids))
        deadline = time.time() + 10
        while True:
            try:
                if open(jpath(self.work, "phase.ack")).read().split() == kids:
                    return
            except FileNotFoundError:
                pass
            if time.time() > deadline:
                self.failures.append(f"load generator did not switch to {kids}")
                return
            time.sleep(0.05)

    def run(self):
        T = self.seconds
        start = time.time()
        # (time, action): the one-off faults, spread over the run.
        plan = sorted([
            (0.15 * T, "add_kb"),
            (0.25 * T, "bad_config"),
            (0.40 * T, "retire_ka"),
            (0.55 * T, "nginx_stop"),
            (0.75 * T, "jwks_down"),
        ])
        nginx_back_at = jwks_up_at = None
        next_tg, next_ng, tick = 5.0, 3.0, 0
        while True:
            now = time.time() - start
            if now >= T:
                break
            while plan and plan[0][0] <= now:
                _, action = plan.pop(0)
                if action == "add_kb":
                    # Rotation, step 1: both keys valid, then links signed
                    # with either.
                    self.signing = ["ka", "kb"]
                    self.reload_tollgate()
                    self.set_phase(["ka", "kb"])
                    event(self.work, "key_kb_added")
                elif action == "bad_config":
                    self.reload_tollgate(bad=True)
                elif action == "retire_ka":
                    # Step 2: new links only with kb; then ka goes.
                    self.set_phase(["kb"])
                    self.signing = ["kb"]
                    self.reload_tollgate()
                    event(self.work, "key_ka_retired")
                elif action == "nginx_stop":
                    self.stop_nginx()
                    nginx_back_at = now + 5
                elif action == "jwks_down":
                    open(jpath(self.work, "jwks-down"), "w").close()
                    event(self.work, "jwks_down")
                    self.counts["jwks_outages"] += 1
                    jwks_up_at = now + 20
            if nginx_back_at is not None and now >= nginx_back_at:
                self.start_nginx()
                nginx_back_at = None
            if jwks_up_at is not None and now >= jwks_up_at:
                os.remove(jpath(self.work, "jwks-down"))
                event(self.work, "jwks_up")
                jwks_up_at = None
            if now >= next_tg:
                self.reload_tollgate()
                next_tg += 5
            if now >= next_ng:
                if self.nginx_up:
                    self.reload_nginx()
                next_ng += 3
            tick += 1
            time.sleep(0.1)
        json.dump({"counts": self.counts, "failures": self.failures}, open(jpath(self.work, "churn.json"), "w"))


def cmd_churn(work, seconds, admin, tg_pid, nginx_port):
    Churn(work, seconds, admin, tg_pid, nginx_port).run()


# ---------------------------------------------------------------- report


def trend(ts, ys):
    """Least-squares slope times the span, relative to the mean: how much
    the fitted line moves over the window."""
    if len(ys) < 3:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var if var else 0.0
    return slope * (ts[-1] - ts[0]) / my if my else 0.0


def cmd_report(work, out_dir, admin, warmup):
    warmup = float(warmup)
    load = json.load(open(jpath(work, "load.json")))
    churn = json.load(open(jpath(work, "churn.json")))
    events = [(float(t), w) for t, w in (ln.split() for ln in open(jpath(work, "events")))]
    rows = [ln.split() for ln in open(jpath(work, "samples.csv")).read().splitlines()[1:]]
    s = [dict(zip(COLUMNS, map(float, r))) for r in rows]
    t0 = s[0]["t"]
    m = metrics(admin)
    tg_total = int(total(m, "tollgate_requests_total"))

    stops = [t for t, w in events if w == "nginx_stop"]
    starts = [t for t, w in events if w == "nginx_started"]
    window = (stops[0], starts[0]) if stops and starts else None

    def in_window(a, b):
        return window is not None and a <= window[1] and b >= window[0]

    valid = sum(n for k, st, n in load["counts"] if k in VALID)
    invalid = sum(n for k, st, n in load["counts"] if k not in VALID)
    failed_valid = [u for u in load["unexpected"] if u[2] in VALID and not (in_window(u[0], u[1]) and u[3] == 502)]
    inside_502 = [u for u in load["unexpected"] if u[2] in VALID and in_window(u[0], u[1]) and u[3] == 502]
    wrong_invalid = [u for u in load["unexpected"] if u[2] not in VALID]
    slowest_502 = max((u[1] - u[0] for u in inside_502), default=0.0)

    # Flatness after warm-up, outside the nginx-stopped window (+5 s for
    # its connections to come back).
    steady = [r for r in s if r["t"] - t0 >= warmup
              and not (window and window[0] - 1 <= r["t"] <= window[1] + 5)]
    ts = [r["t"] for r in steady]
    rss = [r["rss_kb"] for r in steady]
    fds = [r["fds"] for r in steady]
    pool = [r["pooled"] for r in s]
    rss_trend, fds_trend = trend(ts, rss), trend(ts, fds)

    checks = {
        "valid requests failed outside the nginx-stopped window": len(failed_valid) == 0,
        "invalid requests answered with another code": len(wrong_invalid) == 0,
        "RSS trend within 10%": abs(rss_trend) <= 0.10,
        "FD trend within 10%": abs(fds_trend) <= 0.10,
        "tollgate_requests_total == requests sent": tg_total == load["sent"] == load["answered"],
        "churn steps all happened": not churn["failures"],
    }
    ok = all(checks.values())
    c = churn["counts"]
    dur = (s[-1]["t"] - t0) / 60
    summary = (
        f"soak: {'PASS' if ok else 'FAIL'} {dur:.1f} min, {load['sent']:,} requests "
        f"(tollgate_requests_total {tg_total:,}); valid {valid:,}: {len(failed_valid)} failed outside the "
        f"nginx-stopped window ({len(inside_502)} prompt 502s inside it, slowest {slowest_502 * 1000:.0f} ms); "
        f"invalid {invalid:,}: {len(wrong_invalid)} with a wrong code; "
        f"RSS {min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} MB (trend {rss_trend * 100:+.1f}%), "
        f"FDs {min(fds):.0f}-{max(fds):.0f} (trend {fds_trend * 100:+.1f}%), pooled upstream conns "
        f"{min(pool):.0f}-{max(pool):.0f}; {c['tollgate_reloads']} tollgate reloads + {c['bad_config']} refused, "
        f"{c['nginx_reloads']} nginx reloads + {c['nginx_restarts']} stop/start, key rotation ka->kb, "
        f"{c['jwks_outages']}x20 s JWKS outage ({int(s[-1]['jwks_error'])} failed fetches); "
        f"{int(s[-1]['retries'])} upstream retries, {int(s[-1]['upstream_errors'])} upstream errors"
    )
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "soak-details.txt"), "w") as f:
        f.write(summary + "\n\n")
        for k, v in checks.items():
            f.write(f"{'ok  ' if v else 'FAIL'} {k}\n")
        f.write("\nanswers by kind and status:\n")
        for k, st, n in load["counts"]:
            f.write(f"  {k:14} {st!s:>24} {n:>9,}\n")
        f.write(f"\nchurn failures: {churn['failures']}\n")
        f.write(f"unexpected answers (first 50): {(failed_valid + wrong_invalid)[:50]}\n")
        f.write(f"502s inside the nginx-stopped window: {len(inside_502)}\n")
    # Plot data: seconds since start, RSS MB, FDs, pooled, req/s.
    dat = os.path.join(out_dir, "soak.dat")
    with open(dat, "w") as f:
        prev = None
        for r in s:
            rps = 0 if prev is None else (r["requests"] - prev["requests"]) / max(r["t"] - prev["t"], 1e-3)
            f.write(f"{r['t'] - t0:.1f} {r['rss_kb'] / 1024:.2f} {r['fds']:.0f} {r['pooled']:.0f} {rps:.0f}\n")
            prev = r
    marks = []
    for t, w in events:
        if w in ("nginx_stop", "bad_config", "jwks_down", "key_kb_added", "key_ka_retired"):
            marks.append((t - t0, w))
    png = os.path.join(out_dir, "soak.png")
    gp = [
        "set terminal pngcairo noenhanced size 1400,900 font 'sans,10'" if has_pngcairo() else "set terminal png noenhanced size 1400,900",
        f"set output '{png}'",
        "set multiplot layout 3,1 title 'tollgate soak: "
        + f"{dur:.0f} min, nginx reload every 3 s, tollgate reload every 5 s' ",
        "set grid", "set key top left", "set xrange [0:*]",
    ]
    if window:
        gp.append(f"set object 1 rect from {window[0] - t0},graph 0 to {window[1] - t0},graph 1 "
                  "fc rgb '#ffdddd' fs solid 0.5 behind")
    jw = [t for t, w in events if w == "jwks_down"]
    if jw:
        gp.append(f"set object 2 rect from {jw[0] - t0},graph 0 to {jw[0] - t0 + 20},graph 1 "
                  "fc rgb '#ddddff' fs solid 0.5 behind")
    for i, (t, w) in enumerate(marks):
        gp.append(f"set arrow {i + 1} from {t},graph 0 to {t},graph 1 nohead lc rgb '#999999' dt 2")
        gp.append(f"set label {i + 1} '{w}' at {t},graph 0.95 rotate by 90 right font ',8' tc rgb '#666666'")
    gp += [
        "set ylabel 'RSS (MB)'", "set yrange [0:*]",
        f"plot '{dat}' using 1:2 with lines lw 2 title 'tollgate RSS (MB)'",
        "unset label", "unset arrow",
        "set ylabel 'count'", "set key bottom right",
        f"plot '{dat}' using 1:3 with lines lw 2 title 'open FDs', '' using 1:4 with lines title "
        "'pooled upstream connections'",
        "set ylabel 'requests/s'", "set xlabel 'seconds (red: nginx stopped; blue: JWKS endpoint failing)'",
        f"plot '{dat}' using 1:5 with lines title 'requests/s (tollgate_requests_total)'",
        "unset multiplot",
    ]
    subprocess.run(["gnuplot"], input="\n".join(gp), text=True, check=True)
    print(summary)
    print(f"soak: details {os.path.join(out_dir, 'soak-details.txt')}, plot {png}")
    sys.exit(0 if ok else 1)


def has_pngcairo():
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return "pngcairo" in (r.stdout + r.stderr)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"jwks": cmd_jwks, "load": cmd_load, "sample": cmd_sample, "churn": cmd_churn, "report": cmd_report}[cmd](*args)
