"""A fake OpenAI-compatible API on loopback, speaking the real wire format.

/v1/audio/transcriptions (multipart WAV in, {"text"} out), /v1/chat/completions with
"stream": true (server-sent events of chat.completion.chunk objects, then [DONE]) and
/v1/audio/speech with response_format "pcm" (raw s16le 24 kHz, sent in pieces).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

API_KEY = "sk-test"


class FakeOpenAI:
    """Scripted transcripts and replies; records every request."""

    def __init__(self, transcripts: list[str], replies: list[str], speech_s: float = 0.5) -> None:
        self.transcripts = list(transcripts)
        self.replies = list(replies)
        self.speech_s = speech_s
        self.chats: list[dict[str, Any]] = []
        self.speeches: list[str] = []
        self.uploads: list[bytes] = []
        self.unauthorized = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("authorization") != f"Bearer {API_KEY}":
                    fake.unauthorized += 1
                    return self._json(401, {"error": {"message": "Incorrect API key"}})
                if self.path == "/v1/audio/transcriptions":
                    return self._transcription(raw)
                body = json.loads(raw)
                if self.path == "/v1/chat/completions":
                    return self._chat(body)
                if self.path == "/v1/audio/speech":
                    return self._speech(body)
                return self._json(404, {"error": {"message": f"no route {self.path}"}})

            def _transcription(self, raw: bytes) -> None:
                ok = b"multipart/form-data" in self.headers.get("content-type", "").encode()
                if not ok or b'name="model"' not in raw or b"RIFF" not in raw:
                    return self._json(400, {"error": {"message": "expected a WAV file and model"}})
                fake.uploads.append(raw)
                return self._json(200, {"text": fake.transcripts.pop(0)})

            def _chat(self, body: dict[str, Any]) -> None:
                fake.chats.append(body)
                if not body.get("stream"):
                    return self._json(400, {"error": {"message": "this fake only streams"}})
                reply = fake.replies.pop(0)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                pieces = [{"role": "assistant"}] + [
                    {"content": word + " "} for word in reply.split()
                ]
                for delta in pieces:
                    self._event(
                        {
                            "id": "c1",
                            "object": "chat.completion.chunk",
                            "model": "m",
                            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                        }
                    )
                    time.sleep(0.02)
                self._event(
                    {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "model": "m",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    }
                )
                self.wfile.write(b"data: [DONE]\n\n")

            def _speech(self, body: dict[str, Any]) -> None:
                if body.get("response_format") != "pcm" or not body.get("input"):
                    return self._json(400, {"error": {"message": "expected input and pcm"}})
                fake.speeches.append(body["input"])
                t = np.arange(int(fake.speech_s * 24000)) / 24000
                freq = 300 + 100 * len(fake.speeches)
                pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.end_headers()
                for at in range(0, len(pcm), 4801):  # odd-sized pieces, as the network cuts them
                    self.wfile.write(pcm[at : at + 4801])
                    self.wfile.flush()

            def _event(self, data: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                self.wfile.flush()

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
