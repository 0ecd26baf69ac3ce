"""The control channel's command-line client: send a command, or print events as JSON lines."""

from __future__ import annotations

import json
import sys
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.wire.signing import redact_token


async def control_client(url: str, command: dict[str, Any] | None, count: int | None) -> int:
    """With a command: send it and print the reply. Without: print events (count of them)."""
    try:
        async with connect(url) as ws:
            if command is not None:
                await ws.send(json.dumps(command))
                async for message in ws:
                    reply = json.loads(message)
                    if reply.get("type") in ("ok", "error"):
                        print(json.dumps(reply))
                        return 0 if reply["type"] == "ok" else 1
                return 1
            seen = 0
            async for message in ws:
                print(message, flush=True)
                seen += 1
                if count is not None and seen >= count:
                    return 0
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip()
        print(
            f"speakbridge: {redact_token(url)}: {exc.response.status_code}: {body}", file=sys.stderr
        )
        return 1
    except (ConnectionClosed, OSError) as exc:
        print(f"speakbridge: {redact_token(url)}: {exc}", file=sys.stderr)
        return 1
    return 0
