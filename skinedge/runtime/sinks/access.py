"""Who may watch the web viewer: a secret token off this machine, TLS when asked.

A live dermoscopy view is health data. On 127.0.0.1 only this machine's users
can reach it, so it needs no secret (one may still be given). Bound to any
other address it refuses to start without one, and every path — the page, the
streams, the stats — answers 401 without credentials and 403 with wrong ones.

Credentials, compared in constant time (``hmac.compare_digest``):
- ``Authorization: Bearer TOKEN`` (scripts, curl);
- the link ``/?token=TOKEN``, which sets a cookie (HttpOnly, SameSite=Strict,
  Secure under TLS) and redirects to the same path without the token, so the
  secret leaves the address bar and the history; the cookie holds an HMAC of
  the token, not the token.

The token is read from ``--token-file`` or ``$SKINEDGE_VIEW_TOKEN``; without
either, a random one (256 bits) is made at start and printed once, in the link.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import secrets
import ssl
import stat
from pathlib import Path
from typing import Callable

from skinedge.errors import SkinedgeError

TOKEN_ENV = "SKINEDGE_VIEW_TOKEN"
MIN_TOKEN_CHARS = 16
MIN_DISTINCT_CHARS = 8
MIN_TOKEN_BITS = 64  # an online guesser at 1000 tries/s needs ~10^13 years (and 429s stop it far sooner)
COOKIE = "skinedge_view"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0, a LAN address, a host name) is reachable."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str, where: str) -> str:
    """A token a person supplied, refused in one line saying why when it is short or easy to guess."""
    token = token.strip()
    hint = "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise SkinedgeError(f"the viewer token from {where} must be at least {MIN_TOKEN_CHARS} characters without "
                            f"spaces {hint}")
    weak = token_weakness(token)
    if weak:
        raise SkinedgeError(f"the viewer token from {where} is too easy to guess: {weak} {hint}")
    return token


def token_weakness(token: str) -> str | None:
    """Why a token is easy to guess, or None: too few different characters, a run (abcd…, 1234…), or under
    :data:`MIN_TOKEN_BITS` bits by its length and the kinds of characters in it (a generous upper bound)."""
    if len(set(token)) < MIN_DISTINCT_CHARS:
        return f"only {len(set(token))} different characters (at least {MIN_DISTINCT_CHARS})"
    steps = [ord(b) - ord(a) for a, b in zip(token, token[1:])]
    if sum(abs(d) <= 1 for d in steps) >= len(steps) / 2:
        return "it is mostly runs or repeats (abcd…, 1234…, aabb…)"
    pool = sum(size for kind, size in ((str.islower, 26), (str.isupper, 26), (str.isdigit, 10))
               if any(kind(c) for c in token)) + (32 if any(not c.isalnum() for c in token) else 0)
    bits = len(token) * math.log2(pool)
    if bits < MIN_TOKEN_BITS:
        return f"about {bits:.0f} bits by its length and characters (at least {MIN_TOKEN_BITS})"
    return None


def read_token(token_file: Path | None, environ: dict | None = None) -> tuple[str | None, str]:
    """(token, where it came from) from ``--token-file`` or ``$SKINEDGE_VIEW_TOKEN``; (None, "") when neither.

    Raises:
        SkinedgeError: an unreadable or too short token, or a token file other users may read.
    """
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = Path(token_file).expanduser()
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SkinedgeError(f"--token-file {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
                                ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SkinedgeError(f"--token-file {path}: other users can read it; chmod 600 {path}")
        return check_token(text, f"--token-file {path}"), f"--token-file {path}"
    if environ.get(TOKEN_ENV) is not None:
        return check_token(environ[TOKEN_ENV], f"${TOKEN_ENV}"), f"${TOKEN_ENV}"
    return None, ""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """A server TLS context (TLS 1.2+) from a PEM certificate chain and key; None without them.

    Raises:
        SkinedgeError: only one of the two given, or files that do not load (missing, not PEM, key ≠ cert).
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise SkinedgeError("--tls-cert and --tls-key go together: give both PEM files")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(Path(cert).expanduser()), str(Path(key).expanduser()))
    except FileNotFoundError as exc:
        raise SkinedgeError(f"TLS: {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise SkinedgeError(f"TLS: cannot load {cert} with {key}: {getattr(exc, 'reason', None) or exc} "
                            "(both PEM, the key matching the certificate)") from None
    return context


class Gate:
    """Decides each request: ``Gate(token)``; ``gate.check(headers, query)`` → (status, cookie to set)."""

    def __init__(self, token: str | None):
        self.generation = 0  # +1 per rotation: streams let in before it end
        self._set(token)

    def _set(self, token: str | None) -> None:
        self.token = token
        self._cookie = None if token is None else hmac.new(token.encode(), b"skinedge-viewer-cookie",
                                                           hashlib.sha256).hexdigest()

    def rotate(self, token: str) -> None:
        """A new token (SIGHUP re-read the token file): old links, cookies and open streams stop working."""
        if self.token is None:
            raise SkinedgeError("this viewer has no token to rotate (it serves 127.0.0.1 without one)")
        self._set(token)
        self.generation += 1

    @property
    def open(self) -> bool:
        return self.token is None

    def check(self, get_header: Callable[[str], str | None], query_token: str | None) -> tuple[int, str | None]:
        """200 (allowed), 303 (a valid link token: set the cookie, redirect), 401 (no credentials), 403 (wrong).

        Returns (status, Set-Cookie value or None).
        """
        if self.token is None:
            return 200, None
        if query_token is not None:
            if _same(query_token, self.token):
                return 303, f"{COOKIE}={self._cookie}; Path=/; HttpOnly; SameSite=Strict"
            return 403, None
        auth = get_header("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value:
            return (200 if _same(value.strip(), self.token) else 403), None
        cookie = _cookie_value(get_header("Cookie") or "", COOKIE)
        if cookie is not None:
            return (200 if _same(cookie, self._cookie) else 403), None
        return 401, None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _cookie_value(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def viewer_access(host: str, token_file: Path | None = None, tls_cert: Path | None = None,
                  tls_key: Path | None = None, environ: dict | None = None) -> tuple[dict, str]:
    """The web viewer's ``token``/``tls`` arguments for ``--serve HOST``, and where the token came from:
    ``--token-file …``, ``$SKINEDGE_VIEW_TOKEN``, ``"made"`` (random, to be printed once) or ``""`` (none: loopback).

    Checked before the run starts: a bad token file or certificate is one line, not a failed viewer later.
    """
    token, where = read_token(token_file, environ)
    if token is None and not is_loopback(host):
        token, where = new_token(), "made"
    return {"token": token, "tls": tls_context(tls_cert, tls_key)}, where
