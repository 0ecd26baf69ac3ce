"""A fake Meeting BaaS API: a real HTTP server on loopback that checks requests as documented.

It validates what the documentation says of each endpoint (the key header, JSON fields and
their types) and answers 422 with a message when a request breaks it, like the real API.
Tests can script responses (status, headers, body) per endpoint, and react to a created
bot (e.g. start a simulated bot on the streaming URLs it was given).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "test-key-123"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _v1_problems(body: dict) -> list[str]:
    problems = _types(body, {"meeting_url": str, "bot_name": str, "reserved": bool})
    streaming = body.get("streaming")
    if not isinstance(streaming, dict):
        return [*problems, "streaming: required object"]
    problems += _types(streaming, {"input": str, "output": str}, "streaming.")
    if streaming.get("audio_frequency", "24khz") not in ("16khz", "24khz"):
        problems.append("streaming.audio_frequency: must be 16khz or 24khz")
    for key in ("speech_to_text", "automatic_leave", "extra"):
        if key in body and not isinstance(body[key], dict):
            problems.append(f"{key}: must be an object")
    if "start_time" in body and not isinstance(body["start_time"], int):
        problems.append("start_time: must be an integer (ms)")
    return problems


def _v2_problems(body: dict) -> list[str]:
    problems = _types(body, {"meeting_url": str, "bot_name": str, "streaming_enabled": bool})
    config = body.get("streaming_config")
    if not isinstance(config, dict):
        return [*problems, "streaming_config: required object"]
    problems += _types(config, {"input_url": str, "output_url": str}, "streaming_config.")
    if config.get("audio_frequency") not in (16000, 24000, 32000, 48000):
        problems.append("streaming_config.audio_frequency: 16000, 24000, 32000 or 48000 (int Hz)")
    mode = config.get("mode", "audio")
    if mode not in ("audio", "transcription"):
        problems.append("streaming_config.mode: audio or transcription")
    transcription = config.get("transcription")
    if mode == "transcription" and not (
        isinstance(transcription, dict) and isinstance(transcription.get("provider"), str)
    ):
        problems.append("streaming_config.transcription: required, with a provider, in that mode")
    for name, value in (body.get("timeout_config") or {}).items():
        if not isinstance(value, int) or value < 120:
            problems.append(f"timeout_config.{name}: minimum 120")
    if body.get("callback_enabled") and not isinstance(body.get("callback_config"), dict):
        problems.append("callback_config: required when callback_enabled")
    return problems


def _types(body: dict, expected: dict[str, type], prefix: str = "") -> list[str]:
    return [
        f"{prefix}{key}: required {kind.__name__}"
        for key, kind in expected.items()
        if not isinstance(body.get(key), kind)
    ]


class FakeMeetingBaas:
    """Start with `with FakeMeetingBaas() as api:`; api.url is its base URL."""

    def __init__(self, on_create: Callable[[dict], None] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.scripts: dict[tuple[str, str], list[Scripted]] = {}
        self.on_create = on_create
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, method: str, path: str, *responses: Scripted) -> None:
        """Answer the next requests to method path with these, in order, then as usual."""
        self.scripts.setdefault((method, path), []).extend(responses)

    def __enter__(self) -> FakeMeetingBaas:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> Scripted:
        self.requests.append(Recorded(method, path, headers, body))
        scripted = self.scripts.get((method, path))
        if scripted:
            return scripted.pop(0)
        if headers.get("x-meeting-baas-api-key") != API_KEY:
            return Scripted(401, {"error": "Invalid API key"})
        if method == "POST" and path in ("/bots", "/v2/bots"):
            if headers.get("content-type") != "application/json" or not isinstance(body, dict):
                return Scripted(400, {"message": "expected a JSON object"})
            problems = (_v1_problems if path == "/bots" else _v2_problems)(body)
            if problems:
                return Scripted(422, {"message": "; ".join(problems)})
            bot_id = f"bot-{next(self._ids)}"
            if self.on_create:
                self.on_create(body)
            if path == "/bots":
                return Scripted(200, {"bot_id": bot_id})
            return Scripted(201, {"success": True, "data": {"bot_id": bot_id}})
        if method == "DELETE" and path.startswith("/bots/"):
            return Scripted(200, {"ok": True})
        if method == "POST" and path.startswith("/v2/bots/") and path.endswith("/leave"):
            return Scripted(200, {"success": True})
        return Scripted(404, {"message": f"no route {method} {path}"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = fake.answer(self.command, self.path, headers, body)
                data = json.dumps(reply.body).encode() if reply.body is not None else b""
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler
