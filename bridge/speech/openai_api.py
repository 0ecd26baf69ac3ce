"""An OpenAI-compatible API client: transcriptions, streamed chat completions, speech (httpx).

Works with any server that speaks the same wire format (OpenAI, vLLM, llama.cpp, Ollama's
/v1, LocalAI...). base_url includes the version prefix, e.g. https://api.openai.com/v1.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np

from bridge.codecs.wav import write_wav
from bridge.retry import RETRY_STATUSES, HttpError, RetryPolicy, error_message, send

OPENAI_PCM_RATE = 24000  # response_format "pcm": s16le mono at 24 kHz


class OpenAIClient:
    """One base URL and key; every call has a timeout, and retries what may succeed later.

    Streamed calls retry only until the response starts; a stream cut midway raises.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_s: float = 30.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.policy = policy or RetryPolicy(retries=2)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout_s
        )

    def __repr__(self) -> str:
        return f"OpenAIClient({self._http.base_url})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def transcribe(self, samples: np.ndarray, sample_rate: int, model: str) -> str:
        """POST audio/transcriptions with the samples as a WAV file; returns the text."""
        wav = io.BytesIO()
        write_wav(wav, samples, sample_rate)
        files = {"file": ("speech.wav", wav.getvalue(), "audio/wav")}
        data = {"model": model, "response_format": "json"}
        response = await send(
            self._http, "POST", "audio/transcriptions", self.policy, files=files, data=data
        )
        return str(response.json().get("text", "")).strip()

    async def chat(self, messages: list[dict[str, str]], model: str) -> AsyncIterator[str]:
        """POST chat/completions with stream: yields the reply's text as it is generated."""
        body = {"model": model, "messages": messages, "stream": True}
        response = await self._open_stream("chat/completions", body)
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank lines and SSE comments
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                delta = _delta(json.loads(data))
                if delta:
                    yield delta
        finally:
            await response.aclose()

    async def speech(self, text: str, model: str, voice: str) -> AsyncIterator[np.ndarray]:
        """POST audio/speech for raw PCM: yields s16 chunks at OPENAI_PCM_RATE as they arrive."""
        body = {"model": model, "input": text, "voice": voice, "response_format": "pcm"}
        response = await self._open_stream("audio/speech", body)
        try:
            carry = b""
            async for chunk in response.aiter_bytes():
                data = carry + chunk
                whole = len(data) - len(data) % 2
                carry = data[whole:]
                if whole:
                    yield np.frombuffer(data[:whole], dtype="<i2")
        finally:
            await response.aclose()

    async def _open_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST and return the open streaming response, retrying until it starts well."""
        for attempt in range(self.policy.retries + 1):
            last = attempt == self.policy.retries
            try:
                request = self._http.build_request("POST", path, json=body)
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if last:
                    raise HttpError("POST", path, 0, f"cannot reach the server: {exc!r}") from None
                await asyncio.sleep(self.policy.backoff(attempt))
                continue
            if response.is_success:
                return response
            await response.aread()
            await response.aclose()
            if response.status_code not in RETRY_STATUSES or last:
                raise HttpError("POST", path, response.status_code, error_message(response))
            await asyncio.sleep(self.policy.retry_after(response) or self.policy.backoff(attempt))
        raise AssertionError("unreachable")


def _delta(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""
