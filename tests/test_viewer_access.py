"""The web viewer lets no stranger watch: a token off loopback on every path, HTTPS, a cap on viewers.

Checked from outside the way a stranger or a clinician would: curl for every path (no token, a wrong one, the
right one), headless Chromium through the one-time link, HTTPS with a self-signed certificate made here.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from skinedge.errors import SkinedgeError  # noqa: E402
from skinedge.runtime.sinks.access import COOKIE, Gate, is_loopback, viewer_access  # noqa: E402
from skinedge.runtime.sinks.web import BOUNDARY, WebSink  # noqa: E402
from test_sinks import CHROMIUM, Feeder, chromium, pattern  # noqa: E402

TOKEN = "s3cret-token-for-the-tests-0123456789"
PATHS = ["/", "/index.html", "/stream.mjpg", "/frame.jpg", "/stats.json", "/no-such-page"]
needs_curl = pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")


def curl(url: str, *args: str, timeout: float = 3.0) -> tuple[int, str]:
    """(HTTP status, response headers) of one GET; a stream is cut after ``timeout`` s (its status stays)."""
    run = subprocess.run(["curl", "-s", "-o", os.devnull, "-D", "-", "--max-time", str(timeout), *args, url],
                         capture_output=True, text=True, timeout=timeout + 10)
    codes = re.findall(r"^HTTP/\S+ (\d{3})", run.stdout, re.M)
    assert codes, (run.returncode, run.stderr)
    return int(codes[-1]), run.stdout


def near(img: np.ndarray, colour) -> float:
    return float((np.abs(img.astype(int) - colour).max(axis=2) < 40).mean())


@pytest.fixture
def served():
    """A viewer on 0.0.0.0 (every interface, so a token is required), fed a moving pattern."""
    with WebSink("0.0.0.0", 0, token=TOKEN) as sink, Feeder(sink, pattern) as feeder:
        while feeder.shown < 2:
            time.sleep(0.01)
        yield sink


def test_off_loopback_the_viewer_refuses_to_start_without_a_token():
    with pytest.raises(SkinedgeError, match="needs a token"):
        WebSink("0.0.0.0", 0)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20") and not is_loopback("jetson.local")


@needs_curl
def test_every_path_answers_401_without_the_token_403_with_a_wrong_one_and_serves_with_it(served):
    base = f"http://127.0.0.1:{served.port}"
    for path in PATHS:
        code, headers = curl(base + path)
        assert code == 401 and 'WWW-Authenticate: Bearer realm="skinedge"' in headers, path
        assert curl(base + path, "-H", "Authorization: Bearer not-the-token-at-all-000")[0] == 403, path
        assert curl(base + path, "-H", f"Cookie: {COOKIE}=forged")[0] == 403, path
        assert curl(base + path + "?token=wrong-token-guessed-000")[0] == 403, path
        code, _ = curl(base + path, "-H", f"Authorization: Bearer {TOKEN}", timeout=1.5)
        assert code == (404 if path == "/no-such-page" else 200), path
    # The link: sets the cookie (an HMAC of the token, not the token), drops the token from the address bar.
    code, headers = curl(f"{base}/?token={TOKEN}")
    assert code == 303 and re.search(r"^Location: /\r?$", headers, re.M), headers
    cookie = re.search(rf"^Set-Cookie: ({COOKIE}=[0-9a-f]+); Path=/; HttpOnly; SameSite=Strict\r?$", headers, re.M)
    assert cookie and TOKEN not in cookie.group(1), headers
    assert curl(base + "/stats.json", "-H", f"Cookie: {cookie.group(1)}")[0] == 200


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Chromium at /usr/bin/chromium")
def test_headless_chromium_sees_the_stream_through_the_link_and_nothing_without_it(served, tmp_path):
    shot, bare = tmp_path / "with-token.png", tmp_path / "without.png"
    run = chromium([f"--screenshot={shot}", served.login_url()], tmp_path / "profile")
    assert shot.exists(), run.stderr.decode(errors="replace")[-2000:]
    chromium([f"--screenshot={bare}", served.url], tmp_path / "profile2")
    dom = chromium(["--dump-dom", served.url], tmp_path / "profile3").stdout.decode(errors="replace")
    img, refused = cv2.imread(str(shot)), cv2.imread(str(bare))
    assert near(img, (0, 160, 255)) > 0.2 and near(img, (255, 0, 0)) > 0.005  # the frames and their disc
    assert near(refused, (0, 160, 255)) == 0 and "needs its token" in dom


def self_signed(folder) -> tuple[str, str]:
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@needs_curl
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl to make a certificate")
def test_https_with_a_self_signed_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    access, where = viewer_access("0.0.0.0", tls_cert=cert, tls_key=key, environ={"SKINEDGE_VIEW_TOKEN": TOKEN})
    assert where == "$SKINEDGE_VIEW_TOKEN"
    with WebSink("0.0.0.0", 0, **access) as sink, Feeder(sink, pattern):
        assert sink.url == f"https://127.0.0.1:{sink.port}/"
        auth = ["--cacert", cert, "-H", f"Authorization: Bearer {TOKEN}"]
        assert curl(sink.url + "stats.json", *auth)[0] == 200
        assert curl(sink.url + "stats.json", "--cacert", cert)[0] == 401
        code, headers = curl(sink.login_url(), "--cacert", cert)
        assert code == 303 and "; Secure" in headers  # the cookie never travels over plain HTTP
        plain = subprocess.run(["curl", "-s", "--max-time", "3", f"http://127.0.0.1:{sink.port}/stats.json"],
                               capture_output=True, timeout=15)
        assert plain.returncode != 0 or b"shown" not in plain.stdout  # no data over plain HTTP
        assert curl(sink.url + "stats.json", *auth)[0] == 200  # and the server still serves after that
        if shutil.which(CHROMIUM):
            shot = tmp_path / "https.png"
            chromium(["--ignore-certificate-errors", f"--screenshot={shot}", sink.login_url()], tmp_path / "p")
            assert near(cv2.imread(str(shot)), (0, 160, 255)) > 0.2


def stream_socket(port: int, token: str | None = None) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    conn.sendall(f"GET /stream.mjpg HTTP/1.0\r\n{auth}\r\n".encode())
    return conn


def test_viewers_beyond_the_cap_get_503_and_one_that_leaves_is_gone_in_under_a_second():
    with WebSink(port=0, max_viewers=1) as sink, Feeder(sink, pattern):
        first = stream_socket(sink.port)
        assert first.recv(4096).startswith(b"HTTP/1.0 200") and b"--" + BOUNDARY in first.recv(65536) + b"--" + BOUNDARY
        second = stream_socket(sink.port)
        reply = second.recv(4096)
        assert reply.startswith(b"HTTP/1.0 503") and b"too many viewers" in reply + second.recv(4096)
        second.close()
        assert sink.clients == 1
        first.close()
        left = time.perf_counter()
        while sink.clients and time.perf_counter() - left < 3:
            time.sleep(0.02)
        assert sink.clients == 0 and time.perf_counter() - left < 1.0
        third = stream_socket(sink.port)
        assert third.recv(4096).startswith(b"HTTP/1.0 200")
        third.close()


def test_token_sources_are_checked_before_the_run(tmp_path):
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    file.chmod(0o644)
    with pytest.raises(SkinedgeError, match="other users can read it; chmod 600"):
        viewer_access("0.0.0.0", token_file=file)
    file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert viewer_access("0.0.0.0", token_file=file, environ={})[0]["token"] == TOKEN
    with pytest.raises(SkinedgeError, match="at least 16 characters"):
        viewer_access("0.0.0.0", environ={"SKINEDGE_VIEW_TOKEN": "short"})
    with pytest.raises(SkinedgeError, match="cannot read it"):
        viewer_access("0.0.0.0", token_file=tmp_path / "missing")
    with pytest.raises(SkinedgeError, match="go together"):
        viewer_access("127.0.0.1", tls_cert=tmp_path / "cert.pem", environ={})
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(SkinedgeError, match="TLS: cannot load"):
        viewer_access("127.0.0.1", tls_cert=tmp_path / "bad.pem", tls_key=tmp_path / "bad.pem", environ={})
    made, where = viewer_access("0.0.0.0", environ={})
    assert where == "made" and len(made["token"]) >= 40 and made["token"] != viewer_access("::", environ={})[0]["token"]
    assert viewer_access("127.0.0.1", environ={}) == ({"token": None, "tls": None}, "")


def test_the_gate_compares_and_decides():
    gate = Gate(TOKEN)
    headers = {}
    assert gate.check(headers.get, None) == (401, None)
    assert gate.check({"Authorization": f"Bearer {TOKEN}"}.get, None) == (200, None)
    assert gate.check({"Authorization": f"bearer {TOKEN}x"}.get, None) == (403, None)
    assert gate.check({"Authorization": "Basic abc"}.get, None) == (401, None)
    status, cookie = gate.check(headers.get, TOKEN)
    assert status == 303 and cookie.startswith(f"{COOKIE}=")
    value = cookie.split(";")[0]
    assert gate.check({"Cookie": f"other=1; {value}"}.get, None) == (200, None)
    assert Gate(None).check(headers.get, None) == (200, None)


def test_run_prints_a_made_token_once_and_refuses_viewer_options_without_serve(exported, tmp_path):
    from skinedge.runtime.live.command import run_command

    _, spec, models = exported
    clip = tmp_path / "frames"
    clip.mkdir()
    for i in range(3):
        cv2.imwrite(str(clip / f"{i}.png"), pattern(i)[0])
    lines = []
    run_command(None, str(clip), models, backend="onnxruntime", precision="fp32", serve="0.0.0.0:0",
                no_display=True, log=lines.append)
    links = [line for line in lines if "?token=" in line]
    assert len(links) == 1 and re.search(r"web viewer: http://127\.0\.0\.1:\d+/\?token=[\w-]{40,}", links[0])
    with pytest.raises(SkinedgeError, match="are for the web viewer: add --serve"):
        run_command(None, str(clip), models, token_file=tmp_path / "t")


@needs_curl
def test_healthz_needs_no_token_carries_no_image_and_says_503_without_signal():
    import json
    import urllib.error
    import urllib.request

    def health(port: int) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    live = {"signal": True, "state": "live", "frame_age_s": 0.01, "fps": 30.0, "source": "camera 0"}
    with WebSink("0.0.0.0", 0, token=TOKEN) as sink:
        assert health(sink.port)[0] == 503  # nothing shown yet
        with Feeder(sink, pattern, stats=live) as feeder:
            while feeder.shown < 2:
                time.sleep(0.01)
            code, body = health(sink.port)
            assert code == 200 and body == {"status": "ok", "state": "live", "frame_age_s": 0.01, "fps": 30.0}
            assert curl(f"http://127.0.0.1:{sink.port}/stats.json")[0] == 401  # the rest still needs the token
        sink.show(None, None, dict(live, signal=False, state="no signal", frame_age_s=4.2))
        code, body = health(sink.port)
        assert code == 503 and body["status"] == "no signal" and set(body) == {"status", "state", "frame_age_s",
                                                                                "fps"}
