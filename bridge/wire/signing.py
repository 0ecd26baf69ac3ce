"""Signed session URLs: an HMAC over the session id, the socket's role and an expiry.

A token reads `<expiry>.<signature>`: expiry in Unix seconds, signature the first 32 hex
digits (128 bits) of HMAC-SHA256(secret, "speakbridge-v1|{session}|{role}|{expiry}").
It is carried in the URL's `token` query parameter, since the bot sets no headers.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit, urlunsplit

from bridge.wire.protocol import PathRole, RouteError

SIGNATURE_HEX = 32


def sign(secret: str, session_id: str, role: str, expires_at: int) -> str:
    """A token that admits role's socket of session_id until expires_at (Unix seconds)."""
    return f"{expires_at}.{_mac(secret, session_id, role, expires_at)}"


def verify(secret: str, token: str | None, session_id: str, role: str, now: float) -> None:
    """Raise RouteError 401 for a missing token, 403 for a forged, expired or wrong-role one."""
    if not token:
        raise RouteError(401, "this server requires a signed URL (a token query parameter)")
    expiry_text, _, signature = token.partition(".")
    if not expiry_text.isdigit() or len(signature) != SIGNATURE_HEX:
        raise RouteError(403, "malformed token")
    expected = _mac(secret, session_id, role, int(expiry_text))
    if not hmac.compare_digest(expected, signature):
        raise RouteError(403, "invalid token for this session and URL")
    if int(expiry_text) < now:
        raise RouteError(403, "token expired")


def signed_url(
    base: str,
    secret: str | None,
    session_id: str,
    role: PathRole,
    query: dict[str, str],
    ttl_s: float,
) -> str:
    """The session URL for role, with a token when a secret is set (query: extra parameters)."""
    path = f"{base.rstrip('/')}/bots/{session_id}" + ("" if role == "dual" else f"/{role}")
    params = dict(query)
    if secret:
        params["token"] = sign(secret, session_id, role, int(time.time() + ttl_s))
    return path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def control_url(base: str, secret: str | None, session_id: str, ttl_s: float) -> str:
    """The control channel URL of a session, with a token when a secret is set."""
    url = f"{base.rstrip('/')}/control/{session_id}"
    if secret:
        url += "?token=" + sign(secret, session_id, "control", int(time.time() + ttl_s))
    return url


def redact_token(url: str) -> str:
    """The URL as it may be printed or logged: a signed URL's token replaced by `...`."""
    parts = urlsplit(url)
    query = "&".join(
        "token=..." if pair.startswith("token=") else pair for pair in parts.query.split("&")
    )
    return urlunsplit(parts._replace(query=query))


def _mac(secret: str, session_id: str, role: str, expires_at: int) -> str:
    message = f"speakbridge-v1|{session_id}|{role}|{expires_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:SIGNATURE_HEX]
