"""Limits that keep the web viewer standing on a hostile network: failed logins and connections, per client.

- :class:`AuthLimiter`: a client that sends ``max_failures`` wrong tokens within ``window_s`` is answered 429 for
  ``lockout_s`` (a person's token cannot be guessed at full speed); one log line per client and window.
- :class:`ConnectionCap`: open connections per client and overall. Every connection the server accepts costs a
  thread (``http.server``), so the cap is what bounds threads and memory: beyond it a connection is answered
  503 and closed on the accepting thread, without a thread of its own.

Both keep bounded state: at most ``max_clients`` remembered clients, the oldest forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

MAX_FAILURES, FAILURE_WINDOW_S, LOCKOUT_S = 10, 60.0, 60.0
MAX_CONNECTIONS, MAX_PER_CLIENT = 64, 16
MAX_CLIENTS = 4096


class AuthLimiter:
    """``locked(client)`` → seconds of lockout left (0: may try); ``failed(client)`` after a wrong token."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S,
                 lockout_s: float = LOCKOUT_S, *, log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS):
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self.log, self.clock, self.max_clients = log, clock, max_clients
        self.lockouts = 0
        self._clients: OrderedDict[str, list[float]] = OrderedDict()  # client → [window start, failures, until]
        self._lock = threading.Lock()

    def locked(self, client: str) -> float:
        now = self.clock()
        with self._lock:
            entry = self._clients.get(client)
            return max(0.0, entry[2] - now) if entry else 0.0

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            entry = self._clients.get(client)
            if entry is None or (now >= entry[2] > 0) or (not entry[2] and now - entry[0] > self.window_s):
                entry = [now, 0, 0.0]
                self._clients[client] = entry
                while len(self._clients) > self.max_clients:
                    self._clients.popitem(last=False)
            entry[1] += 1
            if entry[1] == self.max_failures:  # once per window: the log line and the lockout
                entry[2] = now + self.lockout_s
                self.lockouts += 1
                self.log(f"web viewer: {self.max_failures} wrong tokens from {client} within {self.window_s:g} s: "
                         f"refused (429) for {self.lockout_s:g} s")

    def forget(self, client: str) -> None:
        """A right token: the client's count starts again (a lockout still runs out first)."""
        with self._lock:
            entry = self._clients.get(client)
            if entry is not None and entry[2] <= self.clock():
                del self._clients[client]


class ConnectionCap:
    """``acquire(client)`` → False beyond ``per_client`` or ``total`` open connections; ``release`` at close."""

    def __init__(self, total: int = MAX_CONNECTIONS, per_client: int = MAX_PER_CLIENT):
        self.total, self.per_client = total, per_client
        self.open, self.refused = 0, 0
        self._by_client: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> bool:
        with self._lock:
            if self.open >= self.total or self._by_client.get(client, 0) >= self.per_client:
                self.refused += 1
                return False
            self.open += 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self.open -= 1
            left = self._by_client.get(client, 1) - 1
            if left > 0:
                self._by_client[client] = left
            else:
                self._by_client.pop(client, None)
