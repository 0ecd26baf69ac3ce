"""HTTP requests with timeouts and retries: on 429, 5xx (honouring Retry-After), network errors."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry; backoff doubles from backoff_s, with jitter."""

    retries: int = 4
    backoff_s: float = 0.5
    max_retry_after_s: float = 60.0

    def backoff(self, attempt: int) -> float:
        return self.backoff_s * 2**attempt * random.uniform(0.5, 1.0)

    def retry_after(self, response: httpx.Response) -> float | None:
        """The server's Retry-After in seconds (a number or an HTTP date), capped."""
        value = response.headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                return None
        return min(max(seconds, 0.0), self.max_retry_after_s)


class HttpError(Exception):
    """A request that failed for good; status 0 when the server could not be reached."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {message}")
        self.method, self.path, self.status, self.message = method, path, status, message


async def send(
    http: httpx.AsyncClient, method: str, path: str, policy: RetryPolicy, **kwargs: Any
) -> httpx.Response:
    """Send a request, retrying what may succeed later; HttpError for what will not."""
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if last:
                raise HttpError(method, path, 0, f"cannot reach the server: {exc!r}") from None
            delay = policy.backoff(attempt)
            log.warning("%s %s failed (%r); retrying in %.1f s", method, path, exc, delay)
        else:
            if response.is_success:
                return response
            if response.status_code not in RETRY_STATUSES or last:
                raise HttpError(method, path, response.status_code, error_message(response))
            delay = policy.retry_after(response) or policy.backoff(attempt)
            log.warning(
                "%s %s -> %d; retrying in %.1f s", method, path, response.status_code, delay
            )
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def error_message(response: httpx.Response) -> str:
    """The server's own words: `message`, `error` or `detail` of a JSON body, else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, dict) and value.get("message"):  # OpenAI: {"error": {"message"}}
                return str(value["message"])
            if value:
                return value if isinstance(value, str) else str(value)[:300]
    return str(body)[:300]
