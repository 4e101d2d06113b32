"""A browser viewer: ``skinedge run --serve HOST:PORT`` (stdlib HTTP server, no external assets).

Routes: ``/`` the page, ``/stream.mjpg`` the live view as MJPEG, ``/frame.jpg``
the newest frame, ``/stats.json`` the loop's stats, ``/healthz`` (no token: state, frame age and fps only)
200 while frames flow and 503 otherwise. Off loopback every other route
needs the viewer's secret (:mod:`skinedge.runtime.sinks.access`); with a
certificate it is HTTPS; at most ``max_viewers`` streams run at once. Limits
(:mod:`skinedge.runtime.sinks.limits`): connections per client and overall are
capped (503 beyond, refused before a thread is started), and a client that sends
too many wrong tokens is answered 429 until its lockout runs out. Every shown frame is
composed once (``compose_view``) and JPEG-encoded at most once, by the first
client that wants it; all clients share that JPEG. A streaming client always
gets the newest frame when it is ready for one, so a slow client skips frames
instead of building a backlog, and never slows the loop or other clients.
"""

from __future__ import annotations

import errno
import json
import math
import re
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import cv2
import numpy as np

from skinedge.errors import SkinedgeError
from skinedge.runtime.sinks.access import Gate, is_loopback
from skinedge.runtime.sinks.limits import MAX_CONNECTIONS, MAX_PER_CLIENT, AuthLimiter, ConnectionCap
from skinedge.runtime.sinks.view import compose_view, end_to_end_ms

if TYPE_CHECKING:
    from skinedge.runtime.pipeline.host import FrameResult

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
BOUNDARY = b"skinedgeframe"
# Per stream socket: caps what the kernel queues for a slow client (Linux lets it grow to MBs, seconds of stale
# frames); a stream then waits for its client and sends the newest frame next.
SEND_BUFFER = 128 * 1024
KEEPALIVE_S = 5.0  # a stream resends its frame after this long without a new one
LEAVE_CHECK_S = 0.5  # a stream looks this often whether its client has gone (the viewer count follows in < 1 s)
MAX_VIEWERS = 4  # concurrent streams; more answer 503
VIEWS = ("enhanced", "departure")  # ?view= on /stream.mjpg and /frame.jpg
DEPARTURE_KEEP_S = 5.0  # the departure view is composed while a client asked for it within this
HANDSHAKE_S = 10.0  # a TLS client must finish its handshake within this
REFUSED = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
           b"Connection: close\r\n\r\ntoo many connections; try again later\n")
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")
_SERVE_HELP = "--serve expects HOST:PORT, :PORT or PORT with a port in 0-65535 (e.g. 127.0.0.1:8080)"


def parse_serve(value: str) -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` → (host, port); the host defaults to 127.0.0.1.

    IPv6 hosts are written in brackets (``[::1]:8080``). Port 0 picks a free port.
    Raises ``SkinedgeError`` naming the bad value and the accepted forms.
    """
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if host and not _HOST.fullmatch(host):
        raise SkinedgeError(f"{_SERVE_HELP} (IPv6 in brackets, no http://), got {value!r}")
    if not port.isdigit() or int(port) > 65535:
        raise SkinedgeError(f"{_SERVE_HELP}, got {value!r}")
    return (host.strip("[]") or DEFAULT_HOST), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # streaming clients never keep the process alive
    request_queue_size = 1024  # a burst of connections waits in the kernel's backlog to be accepted (or refused)
    tls: ssl.SSLContext | None = None

    def server_bind(self) -> None:  # HTTPServer's would do a reverse DNS look-up (getfqdn): slow offline
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def finish_request(self, request, client_address) -> None:
        """TLS handshake here, in the request's own thread: a slow or broken client never holds up the others."""
        if self.tls is not None:
            request.settimeout(HANDSHAKE_S)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):  # plain HTTP to an HTTPS port, an untrusted certificate, a timeout
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        pass  # a client's broken connection is not the run's problem: no traceback on the live console

    def process_request(self, request, client_address) -> None:
        """Beyond the connection cap: 503 and close, here on the accepting thread (no thread for it)."""
        client = str(client_address[0])
        if not self.sink.cap.acquire(client):
            if self.tls is None:  # (a TLS client would not read plain text: it just sees the close)
                try:
                    request.send(REFUSED, socket.MSG_DONTWAIT)
                except OSError:
                    pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.sink.cap.release(client)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.sink.cap.release(str(client_address[0]))


class _Server6(_Server):
    address_family = socket.AF_INET6


class WebSink:
    """Serves the live view over HTTP; ``with WebSink(port=0) as sink: ...; print(sink.url)``.

    Args:
        host: address to listen on; 127.0.0.1 (this machine only) by default,
            0.0.0.0 to let other machines watch (then ``token`` is required).
        port: TCP port; 0 picks a free one (see ``url``/``port``).
        quality: JPEG quality, 1-100.
        height: panel height passed to ``compose_view``.
        token: the viewers' secret (:mod:`~skinedge.runtime.sinks.access`); None on loopback: no secret.
        tls: a server ``ssl.SSLContext`` (:func:`~skinedge.runtime.sinks.access.tls_context`) for HTTPS.
        max_viewers: concurrent streams; the next one is answered 503.
        max_connections / max_per_client: open connections overall / from one address; more are answered 503.
        limiter: failed-token limits (:class:`~skinedge.runtime.sinks.limits.AuthLimiter`; default: 10 wrong
            tokens a minute, then 429 for a minute).
        log: where the limits say what they refused.

    Raises:
        SkinedgeError: no token on a non-loopback address, the port is in use or the address cannot be
            listened on.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, quality: int = 80,
                 height: int | None = None, token: str | None = None, tls: ssl.SSLContext | None = None,
                 max_viewers: int = MAX_VIEWERS, max_connections: int = MAX_CONNECTIONS,
                 max_per_client: int = MAX_PER_CLIENT, limiter: AuthLimiter | None = None,
                 log: Callable[[str], None] = print):
        if token is None and not is_loopback(host):
            raise SkinedgeError(f"the web viewer on {host} would let anyone on the network watch: it needs a token "
                                "(--token-file or $SKINEDGE_VIEW_TOKEN), or serve on 127.0.0.1")
        if max_viewers < 1:
            raise SkinedgeError(f"--max-viewers must be at least 1, got {max_viewers}")
        server_cls = _Server6 if ":" in host else _Server
        try:
            self._server = server_cls((host, int(port)), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SkinedgeError(f"port {port} on {host} is in use: choose another with --serve HOST:PORT") from None
            reason = exc.strerror or str(exc)
            raise SkinedgeError(f"cannot listen on {host}:{port} ({reason}): choose another with --serve HOST:PORT"
                                ) from None
        self._server.sink, self._server.tls = self, tls
        self.cap = ConnectionCap(max_connections, max_per_client)
        self.limiter = limiter if limiter is not None else AuthLimiter(log=log)
        self.gate, self.tls, self.max_viewers = Gate(token), tls is not None, int(max_viewers)
        self.host, self.port = host, int(self._server.server_address[1])
        self.quality, self.height = int(quality), height
        self._cond = threading.Condition()
        self._encode = threading.Lock()
        self._seq = 0  # frames shown
        self._views: dict[str, tuple[int, np.ndarray | None]] = {VIEWS[0]: (0, None)}  # kind → (seq, view)
        self._jpegs: dict[str, tuple[int, bytes]] = {}  # kind → (seq, JPEG) made from that view
        self._departure_until = 0.0  # the departure view is composed while a client asked for it recently
        self._stats: dict = {}
        self._last_raw: np.ndarray | None = None
        self._clients: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"skinedge-web:{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Where to open the page (a wildcard address is shown as this machine's loopback); no secret in it."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"{'https' if self.tls else 'http'}://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def login_url(self) -> str:
        """The link that lets a browser in (sets the cookie): holds the secret, so show it once at most."""
        return self.url if self.gate.open else f"{self.url}?{urlencode({'token': self.gate.token})}"

    @property
    def clients(self) -> int:
        """Streaming clients connected now."""
        with self._cond:
            return len(self._clients)

    def show(self, raw: np.ndarray, result: "FrameResult | None", stats: dict) -> None:
        """Compose the view and hand it to the clients (the JPEG is made when the first one asks)."""
        if self._closed:
            return
        if raw is not None and raw.size:
            self._last_raw = raw
        shown = self._last_raw if raw is None or not raw.size else raw
        view = compose_view(shown, result, stats, height=self.height)
        departure = (compose_view(shown, result, stats, height=self.height, departure=True)
                     if time.monotonic() < self._departure_until else None)
        snapshot = _jsonable(stats)
        snapshot["e2e_ms"] = _jsonable(end_to_end_ms(dict(stats.get("latency_ms") or {})))
        snapshot["view"] = {"width": view.shape[1], "height": view.shape[0]}
        if result is not None:
            snapshot["view"].update(found=bool(result.found), roi=_jsonable(result.roi), note=result.note,
                                    lesion_area=_jsonable(result.lesion_area),
                                    residual=_jsonable(getattr(result, "residual", None)))
        with self._cond:
            self._seq += 1
            snapshot["shown"] = self._seq
            self._views[VIEWS[0]] = (self._seq, view)
            if departure is not None:
                self._views[VIEWS[1]] = (self._seq, departure)
            self._stats = snapshot
            self._cond.notify_all()

    def status(self, stats: dict) -> None:
        """New stats without a new view (the source is stale: the last view stays, its age and state move)."""
        snapshot = _jsonable(stats)
        with self._cond:
            self._stats = {**self._stats, **{k: v for k, v in snapshot.items() if k != "latency_ms"}}

    def close(self) -> None:
        """Stop serving: streams end at once, the port is freed. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            clients = list(self._clients)
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for conn in clients:  # unblock a stream stuck writing to a stalled client
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=2)

    def __enter__(self) -> "WebSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- used by the request handler -------------------------------------------------------------------------

    def _newest(self, after: int = 0, timeout: float | None = None, kind: str = "enhanced"
                ) -> tuple[int, bytes] | None:
        """(seq, JPEG) of the newest frame, waiting up to ``timeout`` s for one newer than ``after``.

        ``kind``: ``enhanced`` (the view) or ``departure`` (the departure map on the right; composed from the
        next frame on once asked for, the plain view until then). None once closed; (0, b"") before any frame.
        """
        with self._cond:
            if kind != VIEWS[0]:
                self._departure_until = time.monotonic() + DEPARTURE_KEEP_S
            self._cond.wait_for(lambda: self._closed or self._seq > after, timeout)
            if self._closed:
                return None
            if self._seq == 0:
                return 0, b""
            if self._views.get(kind, (0, None))[0] != self._seq:
                kind = VIEWS[0]
            if self._jpegs.get(kind, (0, b""))[0] == self._seq:
                return self._jpegs[kind]
        with self._encode:  # one encoder at a time: the others then find it done
            with self._cond:
                seq, view = self._views[kind]
                if self._jpegs.get(kind, (0, b""))[0] == seq:
                    return self._jpegs[kind]
            ok, buf = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            data = buf.tobytes()
            with self._cond:
                if seq > self._jpegs.get(kind, (0, b""))[0]:
                    self._jpegs[kind] = (seq, data)
            return seq, data

    def rotate(self, token: str) -> None:
        """A new token: old links and cookies get 403 from now on, and open streams end within a second."""
        self.gate.rotate(token)
        with self._cond:
            self._cond.notify_all()

    def health(self) -> tuple[int, bytes]:
        """(200 while frames flow, else 503; the JSON body): the signal's state, the newest frame's age and the
        frame rate only, so a supervisor (Docker's HEALTHCHECK, a load balancer) can ask without a token."""
        with self._cond:
            stats = dict(self._stats)
        live = bool(stats.get("signal")) and stats.get("state") == "live" and not self._closed
        body = {"status": "ok" if live else "no signal", "state": stats.get("state", "starting"),
                "frame_age_s": stats.get("frame_age_s"), "fps": stats.get("fps")}
        return (200 if live else 503), json.dumps(_jsonable(body)).encode()

    def _stats_json(self) -> bytes:
        with self._cond:
            stats = dict(self._stats, clients=len(self._clients), shown=self._seq)
        return json.dumps(stats).encode()

    def _track(self, conn: socket.socket, add: bool) -> bool:
        """Count a stream in (False when closed or full) or out."""
        with self._cond:
            if add and (self._closed or len(self._clients) >= self.max_viewers):
                return False
            (self._clients.add if add else self._clients.discard)(conn)
            return True


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = 30  # seconds a stalled client may hold its thread
    server_version = "skinedge"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        if url.path == "/healthz":  # before the gate: a supervisor has no token, and nothing here is patient data
            code, body = self.server.sink.health()
            try:
                self._send(code, "application/json", body)
            except OSError:
                pass
            return
        route = {"/": self._page, "/index.html": self._page, "/stream.mjpg": self._stream, "/frame.jpg": self._frame,
                 "/stats.json": self._stats}.get(url.path)
        try:
            if not self._allowed(url):
                return
            if route is None:
                self._send(404, "text/plain; charset=utf-8", b"not found: try / /stream.mjpg /frame.jpg /stats.json\n")
            else:
                route()
        except OSError:  # the client left, or close() shut its socket
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        pass  # no per-request lines on the console of a live loop

    def _allowed(self, url) -> bool:
        """Every path, streams included, passes the gate first; a valid link token sets the cookie and redirects
        to the same path without it."""
        sink, client = self.server.sink, str(self.client_address[0])
        wait = sink.limiter.locked(client)
        if wait:
            self._send(429, "text/plain; charset=utf-8", b"too many wrong tokens; try again later\n",
                       {"Retry-After": str(math.ceil(wait))})
            return False
        tokens = parse_qs(url.query).get("token")
        self.generation = sink.gate.generation
        status, cookie = sink.gate.check(self.headers.get, tokens[0] if tokens else None)
        if status == 403:
            sink.limiter.failed(client)
        elif status in (200, 303):
            sink.limiter.forget(client)
        if status == 200:
            return True
        if status == 303:
            rest = urlencode([(k, v) for k, v in parse_qs(url.query).items() if k != "token"], doseq=True)
            self.send_response(303)
            self.send_header("Location", url.path + (f"?{rest}" if rest else ""))
            self.send_header("Set-Cookie", cookie + ("; Secure" if self.server.sink.tls else ""))
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
        elif status == 401:
            self._send(401, "text/plain; charset=utf-8", b"this viewer needs its token: open the link skinedge "
                       b"printed, or send Authorization: Bearer TOKEN\n",
                       {"WWW-Authenticate": 'Bearer realm="skinedge"'})
        else:
            self._send(403, "text/plain; charset=utf-8", b"wrong token\n")
        return False

    def _send(self, code: int, ctype: str, body: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _page(self) -> None:
        self._send(200, "text/html; charset=utf-8", PAGE.encode())

    def _stats(self) -> None:
        self._send(200, "application/json", self.server.sink._stats_json())

    def _kind(self) -> str:
        asked = parse_qs(urlsplit(self.path).query).get("view", [VIEWS[0]])[0]
        return asked if asked in VIEWS else VIEWS[0]

    def _frame(self) -> None:
        newest = self.server.sink._newest(timeout=0, kind=self._kind())
        if newest is None or not newest[1]:
            self._send(503, "text/plain; charset=utf-8", b"no frame yet\n")
        else:
            self._send(200, "image/jpeg", newest[1])

    def _stream(self) -> None:
        sink = self.server.sink
        if not sink._track(self.connection, True):
            if not sink._closed:
                self._send(503, "text/plain; charset=utf-8",
                           b"too many viewers (%d at once); try again later\n" % sink.max_viewers)
            return
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(b"--" + BOUNDARY + b"\r\n")
            seq, sent_at, kind = 0, 0.0, self._kind()
            while (newest := sink._newest(seq, LEAVE_CHECK_S, kind)) is not None:
                if _client_left(self.connection) or sink.gate.generation != self.generation:
                    return  # gone, or let in by a token that has since been rotated
                if newest[0] == seq and time.monotonic() - sent_at < KEEPALIVE_S:
                    continue  # nothing new yet
                seq, jpeg = newest
                sent_at = time.monotonic()
                if not jpeg:
                    continue
                # The closing boundary goes right after the part, so a browser shows it without waiting for the next.
                self.wfile.write(b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n--%s\r\n"
                                 % (len(jpeg), jpeg, BOUNDARY))
        finally:
            sink._track(self.connection, False)


def _client_left(conn: socket.socket) -> bool:
    """Whether a streaming client has closed its end. It sends nothing after its request, so a readable
    socket means end of file, a reset, or (TLS) its close alert."""
    try:
        if not select.select([conn], [], [], 0)[0]:
            return False
        if isinstance(conn, ssl.SSLSocket):
            conn.settimeout(0.05)
            try:
                return conn.recv(1) == b""
            except (TimeoutError, ssl.SSLWantReadError):  # TLS records that carry no data (session tickets)
                return False
            finally:
                conn.settimeout(_Handler.timeout)
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _jsonable(x):
    """Plain JSON types (NumPy scalars to Python, NaN/inf to null: JavaScript's JSON.parse rejects them)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return str(x)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>skinedge live</title>
<style>
body { margin: 0; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }
header { padding: 6px 12px; color: #8c8; }
.ai { margin-left: 1em; padding: 1px 6px; background: #ff8c00; color: #000; font-weight: bold; }
#view { display: block; margin: 0 auto; max-width: 100%; height: auto; background: #222; }
#toggle { margin: 0 12px 6px; }
#stats { margin: 0; padding: 6px 12px; font: 13px ui-monospace, monospace; white-space: pre-wrap; }
</style></head>
<body>
<header>skinedge live view <span id="mode"></span>
<span class="ai">the right side is AI-enhanced: a neural network changed the lesion; not a photograph</span></header>
<button id="toggle" type="button">show where the view departs from the camera</button>
<img id="view" src="/stream.mjpg" alt="live view">
<pre id="stats">waiting for stats...</pre>
<script>
"use strict";
const img = document.getElementById("view"), box = document.getElementById("stats");
const mode = document.getElementById("mode"), toggle = document.getElementById("toggle");
const params = new URLSearchParams(location.search);
let polling = false, view = params.get("view") === "departure" ? "departure" : "enhanced";
function show() {  // the right panel: the enhanced view, or the map of where it departs from the camera
  toggle.textContent = view === "enhanced" ? "show where the view departs from the camera"
                                           : "show the enhanced view";
  if (!polling) img.src = "/stream.mjpg" + (view === "enhanced" ? "" : "?view=departure");
}
toggle.onclick = () => { view = view === "enhanced" ? "departure" : "enhanced"; show(); };
function poll() {  // fallback: fetch the newest frame 5 times a second
  if (polling) return;
  polling = true;
  mode.textContent = "(polling /frame.jpg)";
  img.onload = () => setTimeout(next, 200);
  img.onerror = () => setTimeout(next, 1000);
  next();
}
function next() { img.src = "/frame.jpg?view=" + view + "&t=" + Date.now(); }
if (params.get("mode") === "poll") poll();
else {
  show();
  img.onerror = poll;  // no MJPEG support, or the stream broke
  setTimeout(() => { if (!img.naturalWidth) poll(); }, 2000);  // nothing shown after 2 s
}
const f1 = (v) => (typeof v === "number" ? v.toFixed(1) : "-");
function describe(s) {
  if (!s.shown) return "waiting for the first frame...";
  const lat = s.latency_ms || {}, view = s.view || {};
  const state = !s.signal ? "NO SIGNAL" : s.state === "stale" ? "STALE (no frame for " + f1(s.frame_age_s) + " s)"
    : view.found ? "lesion " + f1(100 * view.lesion_area) + "%" : "no lesion";
  const stages = Object.entries(lat).filter(([k]) => !["e2e", "end_to_end", "total"].includes(k))
    .map(([k, v]) => k + " " + f1(v)).join(" | ");
  const variants = Object.entries(s.variants || {}).map(([k, v]) => k + "=" + v).join(" ");
  return ["fps " + f1(s.fps) + "   e2e " + (s.e2e_ms == null ? "-" : f1(s.e2e_ms) + " ms") +
          (s.sr_age_ms == null ? "" : "   SR age " + Math.round(s.sr_age_ms) + " ms") + "   dropped " +
          (s.dropped ?? "-") + "   frame " + (s.frame ?? "-") + "   " + state +
          (s.recording ? "   " + s.recording : ""),
          "stages ms: " + (stages || "-"),
          "backend " + (s.backend || "-") + " " + variants + "   source " + (s.source || "-") +
          "   viewers " + s.clients,
          "signal lost " + (s.lost ?? 0) + "x, reconnected " + (s.reconnects ?? 0) + "x" +
          (s.last_reconnect ? " (last " + s.last_reconnect + ")" : "")].join("\\n");
}
async function stats() {
  try {
    const r = await fetch("/stats.json", {cache: "no-store"});
    box.textContent = describe(await r.json());
  } catch (e) {
    box.textContent = "stats unavailable (" + e + "); retrying";
  }
  setTimeout(stats, 1000);
}
stats();
</script>
</body></html>
"""
