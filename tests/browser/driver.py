"""Drives Debian's chromium through Playwright for tests/browser.rs.

    driver.py <scenario> <plan-json>

One scenario per call, in a fresh headless browser. The Rust test owns the
servers (nginx, tollgate, the app origin), the signed URLs and the
assertions; this script does what a user's browser would and prints the
facts it observed as one JSON object on stdout. Waits are on events and
page conditions, each bounded by Playwright's timeout, never on sleeps.

Chromium is Debian's /usr/bin/chromium, launched by executable_path (Playwright's own browser
builds cannot be downloaded here); a missing one is an error, not a skip.
"""

import json
import os
import signal
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Every wait below is bounded by this; the alarm bounds the whole run, so a
# wedged browser fails the test instead of hanging it.
TIMEOUT_MS = 15_000
signal.alarm(90)


def image_loads_with_signed_url(plan, context, page):
    """An <img> on the app origin loads a signed URL from the files origin;
    the same URL with a tampered signature does not."""
    page.goto(plan["app"] + "/index.html")
    return {
        "signed": page.evaluate("url => loadImg(url, 'signed URL')", plan["signed"]),
        "tampered": page.evaluate("url => loadImg(url, 'tampered signature')", plan["tampered"]),
    }


PLAYER = """
([id, manifest]) => {
  const video = addVideo(id);
  const state = { errors: [] };
  window[id] = state;
  const hls = play(video, manifest);
  hls.on(Hls.Events.ERROR, (_, data) => state.errors.push({
    type: data.type,
    details: data.details,
    fatal: data.fatal,
    code: data.response ? data.response.code : null,
    url: data.frag ? data.frag.url : (data.url || null),
  }));
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  video.id = id;
}
"""


def hls_plays(plan, context, page):
    """hls.js (the README's snippet) plays one stream."""
    page.goto(plan["app"] + "/index.html")
    page.add_script_tag(content=plan["player"])
    page.evaluate(PLAYER, ["good", plan["manifest"]])
    # Past the first segment: the player fetched and decoded more than one.
    page.wait_for_function("() => document.getElementById('good').currentTime > 1.5", timeout=TIMEOUT_MS)
    good = page.evaluate(
        "() => ({ currentTime: document.getElementById('good').currentTime, errors: window.good.errors })"
    )
    return {"good": good}


def hls_plays_through_path_token(plan, context, page):
    """hls.js (the README's snippet) plays a path-token stream; a second
    manifest under the granted prefix that names a segment outside it gets
    that segment refused and the player reports the error."""
    good = hls_plays(plan, context, page)["good"]
    page.evaluate(PLAYER, ["outside", plan["outside"]])
    page.wait_for_function("() => window.outside.errors.length > 0", timeout=TIMEOUT_MS)
    outside = page.evaluate(
        "() => ({ currentTime: document.getElementById('outside').currentTime, errors: window.outside.errors })"
    )
    return {"good": good, "outside": outside}


# hls.js on a live playlist: records every load of the playlist (the first
# and each refresh) with the segment URIs it listed, as tollgate answered
# them, and where playback started.
LIVE_PLAYER = """
([id, manifest]) => {
  const video = addVideo(id);
  video.id = id;
  const state = { errors: [], loads: [], playingAt: null };
  window[id] = state;
  const hls = new Hls();
  hls.on(Hls.Events.ERROR, (_, data) => state.errors.push({
    type: data.type,
    details: data.details,
    fatal: data.fatal,
    code: data.response ? data.response.code : null,
    url: data.frag ? data.frag.url : (data.url || null),
  }));
  hls.on(Hls.Events.LEVEL_LOADED, (_, data) => state.loads.push({
    live: data.details.live,
    uris: data.details.fragments.map((f) => f.relurl),
  }));
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  video.addEventListener('playing', () => {
    if (state.playingAt === null) state.playingAt = video.currentTime;
  });
  hls.loadSource(manifest);
  hls.attachMedia(video);
}
"""


def hls_plays_live(plan, context, page):
    """hls.js plays a live playlist ffmpeg is still writing: it reloads the
    playlist while playback advances two seconds past where it started."""
    page.goto(plan["app"] + "/index.html")
    page.evaluate(LIVE_PLAYER, ["live", plan["manifest"]])
    page.wait_for_function(
        """() => window.live.errors.some((e) => e.fatal)
              || (window.live.playingAt !== null && window.live.loads.length >= 3
                  && document.getElementById('live').currentTime > window.live.playingAt + 2)""",
        timeout=TIMEOUT_MS,
    )
    return page.evaluate(
        """() => ({ currentTime: document.getElementById('live').currentTime, playingAt: window.live.playingAt,
                    loads: window.live.loads, errors: window.live.errors })"""
    )


# dash.js and Shaka Player on one MPD: each records its errors and the
# <video>'s, and starts playing (muted autoplay).
DASHJS_PLAYER = """
([id, manifest]) => {
  const video = addVideo(id);
  video.id = id;
  const state = { errors: [] };
  window[id] = state;
  video.addEventListener('error', () => state.errors.push({ media: video.error.code, message: video.error.message }));
  const player = dashjs.MediaPlayer().create();
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => state.errors.push({
    code: e.error ? e.error.code : null,
    message: e.error ? String(e.error.message) : String(e),
  }));
  player.initialize(video, manifest, true);
}
"""

# Not awaited here: `load()` settles only once playback can start, and a
# page.evaluate() is not bounded by the timeout (the wait after it is).
SHAKA_PLAYER = """
([id, manifest]) => {
  const video = addVideo(id);
  video.id = id;
  const state = { errors: [] };
  window[id] = state;
  video.addEventListener('error', () => state.errors.push({ media: video.error.code, message: video.error.message }));
  const error = (e) => ({ code: e.code, category: e.category, severity: e.severity, data: (e.data || []).map(String) });
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) {
    state.errors.push({ message: 'shaka: browser not supported' });
    return;
  }
  const player = new shaka.Player();
  player.addEventListener('error', (e) => state.errors.push(error(e.detail)));
  player
    .attach(video)
    .then(() => player.load(manifest))
    .then(() => video.play())
    .catch((e) => state.errors.push(e instanceof shaka.util.Error ? error(e) : { message: String(e) }));
}
"""


def dash_plays(plan, context, page, script, player):
    """Loads the player's `script` from the app origin and plays the MPD."""
    page.goto(plan["app"] + "/index.html")
    page.add_script_tag(url=script)
    page.evaluate(player, ["dash", plan["manifest"]])
    # Past the first segment, or stopped by an error (reported, and the
    # test fails on it).
    page.wait_for_function(
        "() => document.getElementById('dash').currentTime > 1.5 || window.dash.errors.length > 0",
        timeout=TIMEOUT_MS,
    )
    return page.evaluate(
        "() => ({ currentTime: document.getElementById('dash').currentTime, errors: window.dash.errors })"
    )


def dashjs_plays(plan, context, page):
    """dash.js plays an MPD through tollgate."""
    return dash_plays(plan, context, page, "/dash.all.min.js", DASHJS_PLAYER)


def shaka_plays(plan, context, page):
    """Shaka Player plays an MPD through tollgate."""
    return dash_plays(plan, context, page, "/shaka-player.compiled.js", SHAKA_PLAYER)


FETCH_AS_DATA_URI = """
async ([url, token]) => {
  try {
    const r = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    const blob = await r.blob();
    const text = await blob.text();
    let naturalWidth = 0;
    if (r.ok) {
      const dataUri = await new Promise((resolve) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.readAsDataURL(blob);
      });
      naturalWidth = (await loadImg(dataUri, 'fetch() + data URI')).naturalWidth;
    }
    return { status: r.status, type: r.type, text, naturalWidth };
  } catch (e) {
    return { error: String(e) };
  }
}
"""


def fetch_with_bearer_across_origins(plan, context, page):
    """fetch() with an Authorization header from the app origin: chromium
    sends a preflight first; the body is readable, turned into a data URI
    and shown; a refusal's JSON body is readable too."""
    cdp = context.new_cdp_session(page)
    preflights = {}

    # Playwright does not show preflights; chromium's DevTools protocol
    # does: the request as an OPTIONS, its answer typed "Preflight".
    def sent(event):
        if event["request"]["method"] == "OPTIONS":
            preflights[event["requestId"]] = {"method": "OPTIONS", "url": event["request"]["url"], "status": None}

    def received(event):
        if event["requestId"] in preflights:
            preflights[event["requestId"]].update(status=event["response"]["status"], type=event["type"])

    cdp.on("Network.requestWillBeSent", sent)
    cdp.on("Network.responseReceived", received)
    cdp.send("Network.enable")
    page.goto(plan["app"] + "/index.html")
    good = page.evaluate(FETCH_AS_DATA_URI, [plan["url"], plan["token"]])
    # Another URL: chromium's HTTP cache would answer the same one without
    # asking (its cache key ignores the Authorization header).
    bad = page.evaluate(FETCH_AS_DATA_URI, [plan["url"] + "?again", plan["bad_token"]])
    # The CDP events of a finished fetch have all been delivered once an
    # evaluate round trip after it returns.
    page.evaluate("() => 0")
    return {"good": good, "bad": bad, "preflights": list(preflights.values())}


SERVICE_WORKER = """
async ([files, url, token]) => {
  const before = await loadImg(`${url}?before-worker`, 'no worker: no header');
  await navigator.serviceWorker.register(`/sw.js?files=${encodeURIComponent(files)}`);
  await navigator.serviceWorker.ready;
  if (!navigator.serviceWorker.controller) {
    await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }));
  }
  await new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = resolve;
    navigator.serviceWorker.controller.postMessage({ token }, [channel.port2]);
  });
  const after = await loadImg(url, 'service worker adds the header');
  return { before, after };
}
"""


def service_worker_adds_bearer_to_images(plan, context, page):
    """A plain <img src> with no credential in its URL loads once the app's
    service worker adds the bearer header; without the worker it does not."""
    page.goto(plan["app"] + "/index.html")
    return page.evaluate(SERVICE_WORKER, [plan["files"], plan["url"], plan["token"]])


# Past the browser's HTTP cache, so every answer is tollgate's.
SAME_ORIGIN_FETCH = """
async ([path, method]) => {
  const init = { cache: 'no-store', ...(method === 'GET' ? {} : { method, body: 'x' }) };
  const r = await fetch(path, init);
  return { status: r.status, redirected: r.redirected, text: await r.text() };
}
"""


def cookie_exchange_on_navigation(plan, context, page):
    """Opening a prefix-signed page lands on its clean URL with a cookie
    that carries the grant: the page's relative <img> loads through it; the
    cookie is HttpOnly, scoped to the prefix, and grants neither another
    path nor another method. A signed sub-resource is served, not
    redirected."""
    first = page.goto(plan["signed_page"])
    redirects = []
    request = first.request.redirected_from
    while request is not None:
        response = request.response()
        redirects.insert(0, {"url": request.url, "status": response.status if response else None})
        request = request.redirected_from
    page.wait_for_function("() => document.getElementById('pic').complete", timeout=TIMEOUT_MS)
    facts = {
        "status": first.status,
        "redirects": redirects,
        "href": page.evaluate("() => location.href"),
        "pic_width": page.evaluate("() => document.getElementById('pic').naturalWidth"),
        "document_cookie": page.evaluate("() => document.cookie"),
        "cookies": context.cookies(),
    }
    facts["again"] = page.evaluate(SAME_ORIGIN_FETCH, [plan["page"], "GET"])
    facts["signed_subresource"] = page.evaluate(SAME_ORIGIN_FETCH, [plan["signed_subresource"], "GET"])
    facts["put_same_path"] = page.evaluate(SAME_ORIGIN_FETCH, [plan["inside"], "PUT"])
    facts["outside"] = page.evaluate(SAME_ORIGIN_FETCH, [plan["outside"], "GET"])
    # The browser keeps the cookie to its Path; a copy set for `/` is what
    # a stolen cookie replayed elsewhere looks like.
    context.add_cookies([dict(c, path="/") for c in facts["cookies"]])
    facts["outside_with_copy"] = page.evaluate(SAME_ORIGIN_FETCH, [plan["outside"], "GET"])
    return facts


def screenshot(plan, context, page):
    """Loads a page, waits until its images are settled and its videos have
    played a little, and saves a PNG."""
    page.set_viewport_size({"width": 900, "height": 320})
    page.goto(plan["url"])
    # What a visitor does: press play (muted, so no gesture is needed).
    page.evaluate("() => document.querySelectorAll('video').forEach((v) => { v.muted = true; v.play().catch(() => {}); })")
    page.wait_for_function(
        """() => [...document.images].every((i) => i.complete)
              && [...document.querySelectorAll('video')].every((v) => v.currentTime > 0.5 || v.error)""",
        timeout=TIMEOUT_MS,
    )
    page.screenshot(path=plan["out"], full_page=True)
    return page.evaluate(
        """() => ({
          images: [...document.images].map((i) => [i.src, i.naturalWidth]),
          videos: [...document.querySelectorAll('video')].map((v) => [v.currentTime, v.error && v.error.message]),
        })"""
    )


SCENARIOS = {
    f.__name__: f
    for f in [
        image_loads_with_signed_url,
        hls_plays,
        hls_plays_through_path_token,
        hls_plays_live,
        dashjs_plays,
        shaka_plays,
        fetch_with_bearer_across_origins,
        service_worker_adds_bearer_to_images,
        cookie_exchange_on_navigation,
        screenshot,
    ]
}


def main():
    scenario, plan = SCENARIOS[sys.argv[1]], json.loads(sys.argv[2])
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"{CHROMIUM} is missing: run `make test` (tests/setup.sh installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        requests, console = [], []
        page.on("request", lambda r: requests.append(r))
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        try:
            facts = scenario(plan, context, page)
        finally:
            # What the page said helps read a failure; it goes to stderr,
            # which the Rust test prints when it fails.
            for line in console:
                print(line, file=sys.stderr)
        # Every request the page made, with its answer: `response()` waits
        # for one still in flight, so none is missed. A request without
        # one failed in the browser (status None, and why): chromium's
        # opaque-response blocking drops a cross-origin <img>'s JSON error.
        facts["console"] = console
        facts["responses"] = []
        for request in requests:
            response = request.response()
            facts["responses"].append(
                {
                    "method": request.method,
                    "url": request.url,
                    "status": response.status if response else None,
                    "failure": None if response else request.failure,
                }
            )
        browser.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
