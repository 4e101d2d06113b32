"""The web viewer under attack: a real ``skinedge run --serve … --token-file …`` (plain, then TLS) streams a
15-fps clip to an authenticated viewer while this test attacks it from 127.0.0.2 (another loopback address, so
the per-client limits hit the attacker, not the viewer on 127.0.0.1).

For each attack the viewer's fps and the loop's fps (frames shown, ``/stats.json``) are measured before and
during it, and the server's threads and RSS are sampled from ``/proc``. Counts and times are bounded; all
traffic stays on this machine. ``SKINEDGE_ATTACK_REPORT=FILE`` writes the figures as JSON.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from skinedge.data.video import write_moving_lesion_clip
from skinedge.runtime.sinks.limits import MAX_FAILURES, MAX_PER_CLIENT

pytestmark = [pytest.mark.slow]
ATTACKER = "127.0.0.2"
TOKEN = "attack-battery-Token-9f3Kq2xLm7Rz"
REPORT: dict = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc(pid: int) -> tuple[int, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["Threads"]), int(status["VmRSS"].split()[0]) / 1024


class Served:
    """``skinedge run`` on a looping-long clip with the web viewer (token; TLS with ``cert``)."""

    def __init__(self, models: Path, clip: Path, folder: Path, cert: tuple[str, str] | None = None):
        self.port, self.cert = free_port(), cert
        token_file = folder / "token"
        token_file.write_text(TOKEN)
        token_file.chmod(0o600)
        self.token_file = token_file
        tls = ["--tls-cert", cert[0], "--tls-key", cert[1]] if cert else []
        self.log = folder / "skinedge.log"
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skinedge.cli", "run", "--source", str(clip), "--realtime", "--models", str(models),
             "--backend", "onnxruntime", "--precision", "fp32", "--no-display", "--serve", f"127.0.0.1:{self.port}",
             "--token-file", str(token_file), *tls], stdout=self.out, stderr=subprocess.STDOUT)
        self.context = None
        if cert:
            self.context = ssl.create_default_context(cafile=cert[0])
        end = time.time() + 120
        while not self.stats().get("shown"):
            assert self.proc.poll() is None and time.time() < end, self.log.read_text()
            time.sleep(0.3)

    def connection(self, source: str = "127.0.0.1", timeout: float = 5) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.context,
                                               source_address=(source, 0))
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(source, 0))

    def get(self, path: str, token: str | None = TOKEN, source: str = "127.0.0.1") -> tuple[int, bytes, dict]:
        conn = self.connection(source)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            r = conn.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            conn.close()

    def stats(self) -> dict:
        try:
            code, body, _ = self.get("/stats.json")
            return json.loads(body) if code == 200 else {}
        except (OSError, ValueError):
            return {}

    def raw(self, source: str = ATTACKER) -> socket.socket:
        """A TCP connection from ``source`` (no TLS, nothing sent)."""
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.port))
        return s

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


class Viewer(threading.Thread):
    """The authenticated viewer on 127.0.0.1: reads ``/stream.mjpg`` and counts its frames."""

    def __init__(self, served: Served):
        super().__init__(daemon=True)
        self.served, self.frames, self.stop = served, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            conn = self.served.connection(timeout=10)
            try:
                conn.request("GET", "/stream.mjpg", headers={"Authorization": f"Bearer {TOKEN}"})
                r = conn.getresponse()
                while not self.stop.is_set() and (chunk := r.read1(65536)):
                    self.frames += chunk.count(b"Content-Type: image/jpeg")
            except OSError:
                time.sleep(0.2)
            finally:
                conn.close()


def measure(served: Served, viewer: Viewer, seconds: float = 4.0) -> dict:
    """Viewer fps, loop fps (frames shown) and the server's most threads and RSS over ``seconds``."""
    f0, s0, t0 = viewer.frames, served.stats().get("shown", 0), time.monotonic()
    threads, rss = [], []
    while time.monotonic() - t0 < seconds:
        t, r = proc(served.proc.pid)
        threads.append(t)
        rss.append(r)
        time.sleep(0.25)
    dt = time.monotonic() - t0
    shown = served.stats().get("shown", s0)
    return {"viewer_fps": round((viewer.frames - f0) / dt, 2), "loop_fps": round((shown - s0) / dt, 2),
            "threads_max": max(threads), "rss_max_mb": round(max(rss), 1)}


def under_attack(name: str, served: Served, viewer: Viewer, start, stop=lambda state: None,
                 seconds: float = 4.0) -> tuple[dict, dict]:
    """(unloaded, under attack) figures; the attack is ``start()`` → state, ended by ``stop(state)``."""
    before = measure(served, viewer)
    state = start()
    try:
        during = measure(served, viewer, seconds)
    finally:
        stop(state)
    REPORT.setdefault("attacks", {})[f"{'tls' if served.cert else 'plain'}: {name}"] = {"before": before,
                                                                                       "during": during}
    return before, during


def holds(before: dict, during: dict) -> None:
    """The Done-when figures: the viewer keeps ≥ 90 % of its fps, the loop stays within 10 %."""
    assert during["viewer_fps"] >= 0.9 * before["viewer_fps"], (before, during)
    assert during["loop_fps"] >= 0.9 * before["loop_fps"], (before, during)


def close_all(sockets) -> None:
    for s in sockets:
        try:
            s.close()
        except OSError:
            pass


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("attack") / "clip.avi"
    write_moving_lesion_clip(path, seconds=240, fps=15, width=320, height=240, seed=8)
    return path


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if os.environ.get("SKINEDGE_ATTACK_REPORT"):
        Path(os.environ["SKINEDGE_ATTACK_REPORT"]).write_text(json.dumps(REPORT, indent=1) + "\n")


def attacker_address_works() -> bool:
    try:
        with socket.socket() as s:
            s.bind((ATTACKER, 0))
        return True
    except OSError:
        return False


needs_attacker = pytest.mark.skipif(not attacker_address_works(), reason="cannot bind 127.0.0.2 (no 127/8 on lo)")


def serve_and_watch(served: Served):
    viewer = Viewer(served)
    viewer.start()
    time.sleep(1.0)
    yield served, viewer
    viewer.stop.set()
    served.close()


@pytest.fixture(scope="class")
def plain(exported, clip, tmp_path_factory):
    yield from serve_and_watch(Served(exported[2], clip, tmp_path_factory.mktemp("plain")))


@pytest.fixture(scope="class")
def tls(exported, clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    yield from serve_and_watch(Served(exported[2], clip, folder, cert=self_signed(folder)))


@needs_attacker
class TestPlain:
    def test_300_slow_connections_leave_the_viewer_and_the_loop_their_pace(self, plain):
        served, viewer = plain

        def start():
            conns = []
            for i in range(300):
                try:
                    s = served.raw()
                except OSError:
                    continue
                if i < 200:  # a request that never ends, one header line at a time
                    try:
                        s.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ")
                    except OSError:
                        pass
                conns.append(s)
            return conns

        before, during = under_attack("300 slow connections", served, viewer, start, close_all)
        holds(before, during)
        assert during["threads_max"] <= before["threads_max"] + MAX_PER_CLIENT + 2, (before, during)

    def test_2000_connections_at_once_are_refused_beyond_the_cap_with_threads_bounded(self, plain):
        served, viewer = plain
        outcome = {}

        def start():
            conns, refused = [], 0
            for _ in range(2000):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.bind((ATTACKER, 0))
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", served.port))
                conns.append(s)
            waiting, end = list(conns), time.monotonic() + 15
            while len(waiting) > MAX_PER_CLIENT and time.monotonic() < end:  # until only the held ones are left
                time.sleep(0.5)
                still = []
                for s in waiting:
                    try:
                        got = s.recv(64)
                        refused += got.startswith(b"HTTP/1.0 503") or got == b""
                    except BlockingIOError:
                        still.append(s)  # accepted and held (within the cap) or still in the backlog
                    except OSError:
                        refused += 1
                waiting = still
            outcome.update(refused=refused, held=len(waiting))
            return conns

        before, during = under_attack("2000 connections at once", served, viewer, start, close_all)
        REPORT["2000_connections"] = outcome
        assert outcome["held"] <= MAX_PER_CLIENT and outcome["refused"] == 2000 - outcome["held"], outcome
        assert during["threads_max"] <= before["threads_max"] + MAX_PER_CLIENT + 2, (before, during)
        holds(before, during)
        time.sleep(1.0)
        assert served.get("/stats.json")[0] == 200  # and afterwards everything is served again

    def test_oversized_headers_and_urls_are_refused(self, plain):
        served, viewer = plain
        for request, status in ((b"GET / HTTP/1.1\r\nX-big: " + b"a" * 200_000 + b"\r\n\r\n", b"431"),
                                (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n", b"414")):
            s = served.raw()
            try:
                s.sendall(request)
                reply = s.recv(64)
            except ConnectionResetError:  # the server closed with the rest of the line unread: a reset
                reply = b"reset"
            s.close()
            assert reply.startswith(b"HTTP/1.0 " + status) or reply == b"reset", reply
        assert served.get("/stats.json")[0] == 200

    @pytest.mark.parametrize("path", ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd",
                                      "/..%2f..%2fetc%2fpasswd", "/stream.mjpg/../../etc/passwd"])
    def test_path_traversal_finds_nothing(self, plain, path):
        served, _ = plain
        code, body, _ = served.get(path, source=ATTACKER)
        assert code == 404 and b"root:" not in body

    def test_http_1_0_and_pipelined_requests(self, plain):
        served, _ = plain
        s = served.raw()
        s.sendall(f"GET /stats.json HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        assert s.recv(64).startswith(b"HTTP/1.0 200")
        s.close()
        s = served.raw()
        one = f"GET /stats.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        s.sendall(one * 3)  # pipelined: HTTP/1.0 answers the first and closes
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
        s.close()
        assert reply.startswith(b"HTTP/1.0 200") and reply.count(b"HTTP/1.0 ") == 1

    def test_a_client_that_stops_reading_mid_stream_slows_no_one(self, plain):
        served, viewer = plain

        def start():
            s = served.raw()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET /stream.mjpg HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
            s.recv(1024)
            return [s]  # and never reads again

        holds(*under_attack("a client that stops reading", served, viewer, start, close_all))

    def test_1000_wrong_tokens_get_429_after_the_limit_and_are_logged_once(self, plain):
        served, viewer = plain
        codes = {}

        def start():
            for i in range(1000):
                code = served.get("/stats.json", token=f"wrong-guess-{i:06d}-Zq8", source=ATTACKER)[0]
                codes[code] = codes.get(code, 0) + 1
            return None

        before, during = under_attack("1000 wrong tokens", served, viewer, start, seconds=2.0)
        REPORT["wrong_tokens"] = codes
        assert codes == {403: MAX_FAILURES, 429: 1000 - MAX_FAILURES}, codes
        code, _, headers = served.get("/stats.json", source=ATTACKER)  # even the right token waits
        assert code == 429 and int(headers["Retry-After"]) > 0
        assert served.get("/stats.json")[0] == 200  # the viewer's own address is not locked out
        log = served.log.read_text()
        assert log.count(f"wrong tokens from {ATTACKER}") == 1, log

    def test_sighup_rotates_the_token_old_one_and_its_stream_stop(self, plain):
        served, viewer = plain
        viewer.stop.set()  # (it holds the old token too: reconnecting with it would be locked out, rightly)
        old_stream = served.connection(timeout=5)
        old_stream.request("GET", "/stream.mjpg", headers={"Authorization": f"Bearer {TOKEN}"})
        response = old_stream.getresponse()
        assert response.status == 200
        new = "rotated-Token-7hQ2mX9pL4vB8nC3"
        served.token_file.write_text(new)
        served.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert served.get("/stats.json")[0] == 403
        assert served.get("/stats.json", token=new)[0] == 200
        ended = time.monotonic() + 5
        while response.read1(65536) and time.monotonic() < ended:
            pass
        assert time.monotonic() < ended  # the stream let in by the old token ended
        old_stream.close()
        assert "viewer token rotated" in served.log.read_text()
        served.token_file.write_text("short")
        served.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert served.get("/stats.json", token=new)[0] == 200  # a bad file keeps the token it had
        assert "the viewer token was not changed" in served.log.read_text()


def self_signed(folder: Path) -> tuple[str, str]:
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@needs_attacker
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl to make a certificate")
class TestTLS:
    def test_300_stalled_handshakes_and_idle_connections(self, tls):
        served, viewer = tls

        def start():
            conns = []
            for i in range(300):
                try:
                    s = served.raw()
                except OSError:
                    continue
                if i < 200:
                    s.send(b"\x16\x03\x01\x00\xc8\x01")  # the start of a ClientHello, then nothing
                conns.append(s)
            return conns

        before, during = under_attack("300 stalled TLS connections", served, viewer, start, close_all)
        holds(before, during)
        assert during["threads_max"] <= before["threads_max"] + MAX_PER_CLIENT + 2, (before, during)

    @pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
    def test_old_tls_is_refused(self, tls, version):
        served, _ = tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
        with pytest.raises((ssl.SSLError, OSError)):
            with context.wrap_socket(served.raw()) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                s.recv(64)

    def test_plain_http_to_the_tls_port_gets_nothing_and_the_server_goes_on(self, tls):
        served, _ = tls
        s = served.raw()
        s.sendall(f"GET /stats.json HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        try:
            reply = s.recv(4096)
        except OSError:
            reply = b""
        s.close()
        assert b"shown" not in reply
        assert served.get("/stats.json")[0] == 200
