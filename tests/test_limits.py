"""The viewer's limits on their own: lockouts that run out (by a fake clock and by a real one), connection caps,
and the strength a person's token must have."""

from __future__ import annotations

import http.client
import time

import pytest

pytest.importorskip("cv2")

from skinedge.errors import SkinedgeError  # noqa: E402
from skinedge.runtime.sinks.access import Gate, check_token, token_weakness  # noqa: E402
from skinedge.runtime.sinks.limits import AuthLimiter, ConnectionCap  # noqa: E402
from skinedge.runtime.sinks.web import WebSink  # noqa: E402
from test_sinks import Feeder, pattern  # noqa: E402

TOKEN = "s3cret-token-for-the-tests-0123456789"


def test_a_lockout_starts_at_the_limit_is_logged_once_runs_out_and_can_start_again():
    now, lines = [0.0], []
    limiter = AuthLimiter(3, window_s=10, lockout_s=5, log=lines.append, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.locked("a") == 0
        limiter.failed("a")
    assert limiter.locked("a") == 5 and limiter.locked("b") == 0 and len(lines) == 1
    now[0] = 5.0
    assert limiter.locked("a") == 0
    for _ in range(3):
        limiter.failed("a")
    assert limiter.locked("a") == 5 and len(lines) == 2 and limiter.lockouts == 2


def test_failures_spread_wider_than_the_window_never_lock_and_a_right_token_starts_the_count_again():
    now = [0.0]
    limiter = AuthLimiter(3, window_s=10, lockout_s=5, log=lambda s: None, clock=lambda: now[0])
    for step in range(10):
        now[0] = step * 6.0  # two failures per window at most
        limiter.failed("a")
    assert limiter.locked("a") == 0
    limiter.failed("b")
    limiter.failed("b")
    limiter.forget("b")
    limiter.failed("b")
    assert limiter.locked("b") == 0


def test_the_limiter_remembers_a_bounded_number_of_clients():
    limiter = AuthLimiter(3, log=lambda s: None, max_clients=100)
    for i in range(10_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._clients) == 100


def test_connection_cap_per_client_and_overall():
    cap = ConnectionCap(total=3, per_client=2)
    assert cap.acquire("a") and cap.acquire("a") and not cap.acquire("a")
    assert cap.acquire("b") and not cap.acquire("c")
    cap.release("a")
    assert cap.acquire("c") and cap.refused == 2 and cap.open == 3


@pytest.mark.parametrize("token", ["aaaaaaaaaaaaaaaaaaaaaaaa", "abcdefghijklmnopqrstuvwx", "1234567890123456",
                                   "aabbccddeeffgghhiijjkkll", "9081726354657483"])
def test_weak_tokens_are_refused_saying_why(token):
    assert token_weakness(token)
    with pytest.raises(SkinedgeError, match="too easy to guess"):
        check_token(token, "--token-file t")


@pytest.mark.parametrize("token", [TOKEN, "correct-horse-battery-staple", "Tr0ub4dor&3xyzzy!"])
def test_strong_tokens_pass(token):
    assert token_weakness(token) is None and check_token(token, "x") == token


def get(port: int, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/stats.json", headers={"Authorization": f"Bearer {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_right_token_works_again_once_the_lockout_has_run_out():
    limiter = AuthLimiter(5, window_s=30, lockout_s=1.0, log=lambda s: None)
    with WebSink(port=0, token=TOKEN, limiter=limiter) as sink, Feeder(sink, pattern):
        assert [get(sink.port, "wrong-token-but-long-enough-7Zq") for _ in range(7)] == [403] * 5 + [429] * 2
        assert get(sink.port, TOKEN) == 429  # locked out: even the right token waits
        time.sleep(1.1)
        assert get(sink.port, TOKEN) == 200


def test_a_rotated_gate_refuses_the_old_token_and_cookie():
    gate = Gate(TOKEN)
    _, cookie = gate.check(lambda name: None, TOKEN)
    value = cookie.split(";")[0]
    gate.rotate("another-token-that-is-long-9Xq")
    assert gate.check(lambda name: f"Bearer {TOKEN}" if name == "Authorization" else None, None)[0] == 403
    assert gate.check(lambda name: value if name == "Cookie" else None, None)[0] == 403
    assert gate.generation == 1
    with pytest.raises(SkinedgeError, match="no token"):
        Gate(None).rotate(TOKEN)
