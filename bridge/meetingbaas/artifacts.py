"""`--fetch-artifacts DIR`: a completed bot's transcript and audio, downloaded at once.

The URLs in `bot.completed` are presigned for 4 hours, so downloads start when the webhook
arrives: streamed to `DIR/{session}/{name}.part` and renamed when whole, abandoned beyond
a size bound, retried (network errors, 5xx, 429) with backoff. Completed bots wait in a
bounded queue; one download runs at a time, off the event loop's hot path (only the
socket reads and file writes of one stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bridge.meetingbaas.webhooks import BotFinal
from bridge.retry import RETRY_STATUSES, RetryPolicy

log = logging.getLogger(__name__)

WANTED = ("transcription", "raw_transcription", "audio")  # the artifacts fetched, by name
DEFAULT_SUFFIX = {"transcription": ".json", "raw_transcription": ".json", "audio": ".flac"}
CHUNK = 1 << 16


class TooLarge(Exception):
    """An artifact over the size bound."""


class ArtifactFetcher:
    """Downloads the transcript and audio of each completed bot into its folder under root."""

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        queue_size: int,
        policy: RetryPolicy | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.policy = policy or RetryPolicy(retries=4, backoff_s=1.0)
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue[tuple[BotFinal, str]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.saved: list[Path] = []
        self.failed = 0
        self.dropped = 0

    def fetch(self, final: BotFinal, folder: str) -> None:
        """Queue a completed bot's downloads into root/folder (failed bots have none)."""
        if final.kind != "bot.completed":
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="artifacts")
        try:
            self._queue.put_nowait((final, folder))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("artifacts of bot %s not fetched: the queue is full", final.bot_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def join(self) -> None:
        """Wait until every queued download has finished (or failed)."""
        await self._queue.join()

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True) as http:
            while True:
                final, folder = await self._queue.get()
                try:
                    await self._fetch_all(http, final, self.root / _safe(folder))
                finally:
                    self._queue.task_done()

    async def _fetch_all(self, http: httpx.AsyncClient, final: BotFinal, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        urls = final.artifacts()
        inline = final.data.get("transcript")  # v1 carries the transcript in the webhook
        if isinstance(inline, list) and "transcription" not in urls:
            path = folder / "transcription.json"
            path.write_text(json.dumps(inline))
            self.saved.append(path)
        for name in WANTED:
            url = urls.get(name)
            if url is None:
                continue
            target = folder / (name + (Path(urlsplit(url).path).suffix or DEFAULT_SUFFIX[name]))
            try:
                size = await self._download(http, url, target)
            except (TooLarge, httpx.HTTPError, OSError) as exc:
                self.failed += 1
                log.warning("bot %s: %s not fetched: %s", final.bot_id, name, _brief(exc))
            else:
                self.saved.append(target)
                log.info("bot %s: %s saved to %s (%d B)", final.bot_id, name, target, size)

    async def _download(self, http: httpx.AsyncClient, url: str, target: Path) -> int:
        """Stream url to target (via target.part); returns its size."""
        for attempt in range(self.policy.retries + 1):
            try:
                return await self._stream(http, url, target)
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status not in RETRY_STATUSES or attempt == self.policy.retries:
                    raise
                delay = self.policy.retry_after(exc.response) or self.policy.backoff(attempt)
            except httpx.TransportError:
                if attempt == self.policy.retries:
                    raise
                delay = self.policy.backoff(attempt)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _stream(self, http: httpx.AsyncClient, url: str, target: Path) -> int:
        part = target.with_name(target.name + ".part")
        async with http.stream("GET", url) as response:
            response.raise_for_status()
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise TooLarge(f"{declared} B declared, over {self.max_bytes}")
            size = 0
            try:
                with open(part, "wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise TooLarge(f"over {self.max_bytes} B")
                        out.write(chunk)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        part.replace(target)
        return size


def _safe(folder: str) -> str:
    """A folder name from a session or bot id: no path separators or dots in front."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in folder)
    return cleaned or "unknown"


def _brief(exc: BaseException) -> str:
    """An error without the presigned URL's query (its signature)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {str(exc).split('?')[0]}"
