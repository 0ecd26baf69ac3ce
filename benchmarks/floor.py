"""The floor: the plainest WebSocket echo a library allows, to know what the transport costs.

    .venv/bin/python -m benchmarks.floor --library websockets --port 8767

Each binary message goes straight back; text is ignored. No framing, VAD, resampling,
pacing or metrics: what is left is the WebSocket library and the event loop (uvloop, as
speakbridge runs). benchmarks/load.py drives it with `--floor LIBRARY` like the bridge, so
the ramp shows how many sessions a core carries when a server does nothing but echo.
`picows` (Cython framing, one callback per frame, no task per connection) is in the
`bench` extra for this comparison only.
"""

from __future__ import annotations

import argparse
import asyncio

from bridge.server.loops import run

LIBRARIES = ("websockets", "picows")


async def serve_websockets(port: int) -> None:
    """websockets' asyncio server, as speakbridge uses it: one task per connection."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            if isinstance(message, bytes):
                await connection.send(message)

    async with serve(echo, "127.0.0.1", port, compression=None, max_size=256 * 1024):
        await asyncio.Future()


async def serve_picows(port: int) -> None:
    """picows: frames are handed to a synchronous callback as they are parsed."""
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        ws_create_server,
    )

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.BINARY:
                transport.send(WSMsgType.BINARY, frame.get_payload_as_memoryview())
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def listener(request: WSUpgradeRequest) -> Echo:
        return Echo()

    server = await ws_create_server(listener, "127.0.0.1", port, max_frame_size=256 * 1024)
    async with server:
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--library", choices=LIBRARIES, default="websockets")
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    print(f"{args.library} floor echo listening on ws://127.0.0.1:{args.port}", flush=True)
    serve = serve_websockets if args.library == "websockets" else serve_picows
    run(serve(args.port))


if __name__ == "__main__":
    main()
