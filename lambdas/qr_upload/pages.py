"""The two HTML pages, served by the HTTP API with a restrictive Content-Security-Policy.

Scripts and styles are inline with a per-response nonce (no extra routes, no 'unsafe-inline');
the empty data: favicon saves the browser a request that would only 404.
`Referrer-Policy: no-referrer` keeps the sessionId in the phone page's URL from leaking to S3.

Stable element ids (the browser end-to-end test relies on them):

Desktop page `GET /` (body `data-api-base`: path prefix of the API, "" or "/{stage}"):
- `#status`: text for people; `data-state` is one of creating, waiting, uploading, completed,
  expired, error; `data-socket` is open or closed (the WebSocket's state).
- `#qr`: <img> whose src is the QR code (SVG data: URI) encoding the phone page URL.
- `#upload-link`: <a> whose href is that phone page URL (same value as in the QR code).
- `#photo`: <img> showing the uploaded photo through its short-lived GET URL once completed.
- `#message`: error text, empty when all is well.
- `#new-session`: button shown when the session ends (completed, expired, error); reloads.

Phone page `GET /upload?sessionId=` (body `data-api-base`, `data-session-id`, `data-max-bytes`):
- `#file`: <input type=file accept=(the accepted photo types) capture>; choosing a file starts the upload.
- `#progress`: <progress> of the POST to S3 (bytes sent of total), shown while sending.
- `#status`: `data-state` is one of ready, uploading, checking (S3 has the bytes, the server is
  checking them), done, superseded (another device sent a photo first), error (the message says
  why; a refused file can be replaced), expired, not-found, completed.
- `#message`: why a file was refused or an upload failed, empty otherwise.
"""

from __future__ import annotations

import html
import secrets

from aws_lambda_powertools.event_handler import Response

_DESKTOP_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:40rem;padding:0 1rem;color:#111}
#qr{display:block;width:294px;height:294px;margin:1rem 0;image-rendering:pixelated}
#photo{display:block;max-width:100%;max-height:calc(100vh - 14rem);width:auto;height:auto;object-fit:contain;margin:1rem 0}
#message{color:#b00020}
[hidden]{display:none!important}
"""

_DESKTOP_SCRIPT = r"""
(() => {
  "use strict";
  const base = document.body.dataset.apiBase;
  const $ = (id) => document.getElementById(id);
  const statusEl = $("status"), messageEl = $("message");
  const PING_MS = 5 * 60 * 1000; // API Gateway closes a socket idle for 10 minutes
  const POLL_MS = 5000;          // status polling while the socket is down
  const POLL_OPEN_EVERY = 6;     // and every 6th tick while it is up, in case a message was lost
  let session = null, socket = null, retry = 0, ticks = 0, done = false;
  const timers = [];

  function setState(state, text) { statusEl.dataset.state = state; statusEl.textContent = text; }

  async function api(path, options) {
    try {
      const res = await fetch(base + path, Object.assign({ cache: "no-store" }, options));
      let body = {};
      try { body = await res.json(); } catch (e) { body = {}; }
      return { ok: res.ok, status: res.status, body: body };
    } catch (e) {
      return { ok: false, status: 0, body: { error: "Network error" } };
    }
  }

  function finish() {
    done = true;
    timers.forEach((t) => clearInterval(t));
    if (socket) { socket.onclose = null; socket.close(); }
    $("qr").hidden = true;
    $("upload-link").hidden = true;
    $("new-session").hidden = false;
  }

  function showPhoto(url) {
    $("photo").src = url;
    $("photo").hidden = false;
    setState("completed", "Photo received.");
    finish();
  }

  async function checkStatus() {
    if (done || !session) return;
    const r = await api("/sessions/" + encodeURIComponent(session.sessionId), {
      headers: { Authorization: "Bearer " + session.desktopToken },
    });
    if (done) return;
    if (r.ok && r.body.status === "COMPLETED" && r.body.imageUrl) {
      showPhoto(r.body.imageUrl);
    } else if (r.ok && r.body.status === "UPLOAD_REQUESTED") {
      setState("uploading", "Your phone is sending the photo...");
    } else if (r.status === 400 && r.body.error === "Session expired") {
      setState("expired", "This session has expired. Start again to get a new code.");
      finish();
    } else if (!r.ok) {
      messageEl.textContent = r.body.error || "Could not check the session; retrying.";
    }
  }

  function connect() {
    if (done) return;
    const url = session.websocketUrl + "?sessionId=" + encodeURIComponent(session.sessionId) +
      "&token=" + encodeURIComponent(session.desktopToken);
    socket = new WebSocket(url);
    socket.onopen = () => {
      retry = 0;
      statusEl.dataset.socket = "open";
      checkStatus(); // catch up on anything that happened while not connected
    };
    socket.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg && msg.action === "UPLOAD_COMPLETED" && msg.sessionId === session.sessionId) checkStatus();
    };
    socket.onclose = () => {
      statusEl.dataset.socket = "closed";
      if (done) return;
      // Exponential backoff with jitter, capped at 30 s; polling covers the gap.
      const delay = Math.min(30000, 1000 * 2 ** retry) * (0.5 + Math.random() / 2);
      retry += 1;
      setTimeout(connect, delay);
    };
  }

  function tick() {
    ticks += 1;
    const open = socket && socket.readyState === WebSocket.OPEN;
    if (!open || ticks % POLL_OPEN_EVERY === 0) checkStatus();
  }

  function ping() {
    // No route answers it; the traffic alone resets API Gateway's idle timer.
    if (socket && socket.readyState === WebSocket.OPEN) socket.send('{"action":"ping"}');
  }

  async function start() {
    setState("creating", "Creating a session...");
    const r = await api("/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ qr: true }),
    });
    if (!r.ok) {
      setState("error", "Could not create a session.");
      messageEl.textContent = r.body.error || "Please try again.";
      $("new-session").hidden = false;
      return;
    }
    session = r.body;
    $("qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(session.qrSvg);
    $("qr").hidden = false;
    $("upload-link").href = session.uploadPageUrl;
    $("upload-link").hidden = false;
    setState("waiting", "Scan the code with your phone to send a photo.");
    statusEl.dataset.socket = "closed";
    connect();
    timers.push(setInterval(tick, POLL_MS), setInterval(ping, PING_MS));
    // Ask the server (not the local clock) once the session should have expired.
    setTimeout(checkStatus, Math.max(0, session.expiresAt * 1000 - Date.now()) + 1000);
  }

  $("new-session").addEventListener("click", () => window.location.reload());
  start();
})();
"""

_DESKTOP_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>Send a photo from your phone</title>
<style nonce="{nonce}">{style}</style>
</head>
<body data-api-base="{base}">
<main>
<h1>Send a photo from your phone</h1>
<p id="status" data-state="creating" data-socket="closed" role="status" aria-live="polite">Loading...</p>
<img id="qr" alt="QR code: scan it with your phone to open the upload page" width="294" height="294" hidden>
<p><a id="upload-link" href="#" hidden>Or open the upload page on your phone with this link</a></p>
<img id="photo" alt="The photo sent from your phone" hidden>
<p id="message" role="alert"></p>
<button id="new-session" type="button" hidden>Start again</button>
</main>
<script nonce="{nonce}">{script}</script>
</body>
</html>
"""

_PHONE_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:32rem;padding:0 1rem;color:#111}
label{display:block;margin:1rem 0 .5rem;font-weight:600}
#message{color:#b00020}
#progress{display:block;width:100%;height:1.25rem;margin:.5rem 0}
[hidden]{display:none!important}
"""

_PHONE_SCRIPT = r"""
(() => {
  "use strict";
  const body = document.body.dataset;
  const $ = (id) => document.getElementById(id);
  const fileEl = $("file"), statusEl = $("status"), messageEl = $("message"), progressEl = $("progress");
  const maxBytes = Number(body.maxBytes);

  function setState(state, text) { statusEl.dataset.state = state; statusEl.textContent = text; }
  function mb(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }

  function refuse(text) {
    setState("error", "That file was not sent.");
    messageEl.textContent = text;
    fileEl.value = "";
  }

  // The accepted photo types; the server's POST policy pins the one chosen, and the event
  // function checks the bytes themselves.
  const TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp",
                  gif: "image/gif", heic: "image/heic", heif: "image/heif" };
  const ACCEPTED = new Set(Object.values(TYPES));
  function typeOf(file) {
    if (file.type) return file.type.toLowerCase();
    // Some browsers leave HEIC's type empty; fall back on the extension.
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    return TYPES[ext] || "";
  }
  function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  // XMLHttpRequest rather than fetch: only it reports upload progress.
  function post(url, form) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      progressEl.value = 0;
      progressEl.hidden = false;
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) {
          progressEl.max = e.total;
          progressEl.value = e.loaded;
          statusEl.textContent = "Sending... " + Math.floor((100 * e.loaded) / e.total) + "%";
        }
      };
      xhr.onload = () => resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, text: xhr.responseText });
      xhr.onerror = () => resolve({ ok: false, status: 0, text: "" });
      xhr.send(form);
    });
  }

  // After S3 took the bytes, the server decides: this photo, another device's, or a refusal.
  async function outcome(key) {
    const url = body.apiBase + "/upload-status?sessionId=" + encodeURIComponent(body.sessionId) +
      "&uploadKey=" + encodeURIComponent(key);
    for (let i = 0; i < 90; i++) {
      try {
        const res = await fetch(url, { cache: "no-store" });
        const r = await res.json();
        if (res.ok && r.state !== "pending") return r;
      } catch (e) { /* keep asking */ }
      await sleep(i < 10 ? 500 : 1000);
    }
    return { state: "unknown" };
  }

  async function upload(file) {
    messageEl.textContent = "";
    const type = typeOf(file);
    // Checked here before anything is sent; the S3 policy and the server refuse the same files regardless.
    if (!ACCEPTED.has(type)) return refuse("That file is not a photo. Choose a JPEG, PNG, WebP, GIF or HEIC photo.");
    if (file.size === 0) return refuse("That file is empty. Choose a photo.");
    if (file.size > maxBytes) return refuse("That photo is " + mb(file.size) + "; the limit is " + mb(maxBytes) + ".");

    fileEl.disabled = true;
    setState("uploading", "Sending...");
    let res, grant = {};
    try {
      res = await fetch(body.apiBase + "/upload-url?sessionId=" + encodeURIComponent(body.sessionId) +
        "&contentType=" + encodeURIComponent(type), { cache: "no-store" });
      try { grant = await res.json(); } catch (e) { grant = {}; }
    } catch (e) {
      res = { ok: false, status: 0 };
    }
    if (!res.ok) {
      if (grant.error === "Session expired") {
        setState("expired", "This session has expired. Start again on your computer.");
      } else if (grant.error === "Session already completed") {
        setState("completed", "A photo was already sent for this session.");
      } else {
        setState("error", "Could not start the upload.");
        messageEl.textContent = grant.error || "Network error; try again.";
        fileEl.disabled = false;
      }
      return;
    }
    const form = new FormData();
    Object.entries(grant.fields).forEach(([name, value]) => form.append(name, value));
    form.append("file", file); // S3 ignores every field after the file, so it goes last
    const s3 = await post(grant.uploadUrl, form);
    progressEl.hidden = true;
    if (!s3.ok) {
      const code = (s3.text.match(/<Code>([^<]+)<\/Code>/) || [])[1] || (s3.status ? "HTTP " + s3.status : "");
      setState("error", s3.status ? "The upload was refused." : "The upload failed.");
      messageEl.textContent = !code ? "Network error; try again." :
        code === "EntityTooLarge" ? "The photo is too large." : "Storage said: " + code;
      fileEl.disabled = false;
      return;
    }
    setState("checking", "Checking the photo...");
    const r = await outcome(grant.uploadKey);
    if (r.state === "completed") {
      setState("done", "Sent. Look at your computer.");
    } else if (r.state === "superseded") {
      setState("superseded", "Not sent: another device sent a photo first.");
      messageEl.textContent = r.message || "";
    } else if (r.state === "expired") {
      setState("expired", "This session has expired. Start again on your computer.");
    } else if (r.state === "refused") {
      setState("error", "That file was not accepted. Choose another photo.");
      messageEl.textContent = r.message || "";
      fileEl.value = "";
      fileEl.disabled = false;
    } else {
      setState("error", "No answer about the photo yet. Look at your computer.");
      fileEl.disabled = false;
    }
  }

  fileEl.addEventListener("change", () => { if (fileEl.files.length) upload(fileEl.files[0]); });
})();
"""

_PHONE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>Send a photo</title>
<style nonce="{nonce}">{style}</style>
</head>
<body data-api-base="{base}" data-session-id="{session_id}" data-max-bytes="{max_bytes}">
<main>
<h1>Send a photo</h1>
<label for="file">Take or choose a photo (up to {max_mb} MB)</label>
<input id="file" type="file" accept="image/jpeg,image/png,image/webp,image/gif,image/heic,image/heif,.heic,.heif" capture="environment"{disabled}>
<progress id="progress" max="1" value="0" hidden></progress>
<p id="status" data-state="{state}" role="status" aria-live="polite">{status_text}</p>
<p id="message" role="alert"></p>
</main>
<script nonce="{nonce}">{script}</script>
</body>
</html>
"""

# Initial state of the phone page when the session cannot take an upload.
PHONE_STATES = {
    "ready": "Choose a photo to send it to your computer.",
    "expired": "This session has expired. Start again on your computer.",
    "not-found": "This link is not valid. Scan the code on your computer again.",
    "completed": "A photo was already sent for this session.",
}


def _csp(nonce: str, connect: list[str], images: list[str]) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "img-src " + " ".join(["'self'", *images]),
            "connect-src " + " ".join(["'self'", *connect]),
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _page(body: str, csp: str) -> Response:
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={
            "Content-Security-Policy": csp,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


def desktop_page(api_base: str, websocket_origin: str, photo_origin: str) -> Response:
    nonce = secrets.token_urlsafe(18)
    body = _DESKTOP_HTML.format(nonce=nonce, style=_DESKTOP_STYLE, script=_DESKTOP_SCRIPT, base=html.escape(api_base))
    # data: for the QR code image; the photo links' origin (CloudFront) for the photo.
    return _page(body, _csp(nonce, connect=[websocket_origin], images=["data:", photo_origin]))


def phone_page(api_base: str, session_id: str, max_bytes: int, state: str, s3_origin: str) -> Response:
    nonce = secrets.token_urlsafe(18)
    body = _PHONE_HTML.format(
        nonce=nonce,
        style=_PHONE_STYLE,
        script=_PHONE_SCRIPT,
        base=html.escape(api_base),
        session_id=html.escape(session_id),
        max_bytes=max_bytes,
        max_mb=f"{max_bytes / 1048576:g}",
        disabled="" if state == "ready" else " disabled",
        state=state,
        status_text=PHONE_STATES[state],
    )
    response = _page(body, _csp(nonce, connect=[s3_origin], images=["data:"]))
    response.status_code = {"ready": 200, "not-found": 404}.get(state, 400)
    return response
