"""``skinedge run --watchdog``: tell systemd the run is ready, and keep telling it while frames flow.

systemd's notify protocol (``sd_notify(3)``): one datagram per message to the unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` is the abstract namespace). ``READY=1`` once the first frame is shown
(``Type=notify`` units count as started then), ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC`` but *only from the
frame path*: when frames stop (a hung pipeline, a camera gone for good) the pings stop and systemd restarts the
unit after ``WatchdogSec``. ``STOPPING=1`` when the run ends. No library: the protocol is one ``sendto``.
"""

from __future__ import annotations

import os
import socket
import time

from skinedge.errors import SkinedgeError

DEFAULT_INTERVAL_S = 5.0  # pings when systemd sets no WATCHDOG_USEC (a Type=notify unit without WatchdogSec)


class Watchdog:
    """``Watchdog.from_environment()``; then ``frame()`` after every shown frame and ``stopping()`` at the end."""

    def __init__(self, address: str, interval_s: float = DEFAULT_INTERVAL_S, clock=time.monotonic):
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.interval_s, self.clock = interval_s, clock
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)  # a systemd that does not read must never stall the view
        self.ready = False
        self.last = -float("inf")
        self.sent = {"READY=1": 0, "WATCHDOG=1": 0, "STOPPING=1": 0}

    @classmethod
    def from_environment(cls, environ=os.environ) -> "Watchdog":
        """The watchdog systemd asked for, or a one-line error when this process was not started by a unit that
        listens (``Type=notify``; ``WatchdogSec=`` sets the ping interval)."""
        address = environ.get("NOTIFY_SOCKET")
        if not address:
            raise SkinedgeError("--watchdog needs systemd's NOTIFY_SOCKET: run skinedge from a unit with "
                                "Type=notify and WatchdogSec= (see deploy/skinedge.service), or drop --watchdog")
        usec = environ.get("WATCHDOG_USEC", "")
        interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else DEFAULT_INTERVAL_S
        return cls(address, interval)

    def _send(self, message: str) -> None:
        try:
            self.sock.sendto(message.encode(), self.address)
            self.sent[message] = self.sent.get(message, 0) + 1
        except OSError:  # systemd gone, restarting or not reading: nothing to tell, no reason to stop the view
            pass

    def frame(self) -> None:
        """A frame was shown: READY=1 the first time, then WATCHDOG=1 at most every interval."""
        if not self.ready:
            self._send("READY=1")
            self.ready = True
        now = self.clock()
        if now - self.last >= self.interval_s:
            self._send("WATCHDOG=1")
            self.last = now

    def stopping(self) -> None:
        self._send("STOPPING=1")
        self.sock.close()
