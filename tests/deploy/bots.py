"""Lightweight bots for the deployment tests: a hello and a few real audio frames per session,
then the socket held open; each socket reconnects to the same URL after any close or refusal,
with gen3's backoff (1, 2, 4 ... 60 s), and says hello again."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.deploy.balancers import hello
from tests.sounds import recording

RATE = 16000
FRAME = 320  # 10 ms at 16 kHz, as gen3 sends
AUDIO = recording("Front_Center", RATE)
FRAMES = [AUDIO[i * FRAME : (i + 1) * FRAME].tobytes() for i in range(5)]


@dataclass
class Socket:
    """One of a bot's sockets: how often it opened, whether it is open, what refused it."""

    url: str
    speaks: bool  # sends the hello and the meeting's audio (dual or output)
    connects: int = 0
    open: bool = False
    ws: ClientConnection | None = None
    refusals: list[int] = field(default_factory=list)


class Gen3Bot:
    """A session as gen3 holds it: one socket both ways, or two (output, then input), from its
    own address (source: a loopback address, as each real bot has its own)."""

    def __init__(
        self,
        base: str,
        session: str,
        split: bool,
        source: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.session = session
        self.source = source
        root = f"{base}/bots/{session}"
        self.sockets = (
            [Socket(f"{root}/output", True), Socket(f"{root}/input", False)]
            if split
            else [Socket(root, True)]
        )
        self.tls = tls
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(s)) for s in self.sockets]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drop(self, index: int) -> None:
        """Close one socket, as a network blip would end it: the bot reconnects (backoff)."""
        sock = self.sockets[index]
        assert sock.ws is not None and sock.open
        await sock.ws.close()

    @property
    def up(self) -> bool:
        return all(s.open for s in self.sockets)

    @property
    def connects(self) -> list[int]:
        return [s.connects for s in self.sockets]

    async def _keep(self, sock: Socket) -> None:
        delay = 1.0
        while True:
            try:
                async with connect(
                    sock.url,
                    ssl=self.tls,
                    ping_interval=None,
                    open_timeout=10,
                    local_addr=(self.source, 0),
                ) as ws:
                    sock.connects += 1
                    delay = 1.0
                    if sock.speaks:
                        await ws.send(hello(f"bot-{self.session}", RATE))
                        for frame in FRAMES:
                            await ws.send(frame)
                    sock.open, sock.ws = True, ws
                    async for _ in ws:  # the bridge may play audio; the bot just takes it
                        pass
            except InvalidStatus as exc:
                sock.refusals.append(exc.response.status_code)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                pass
            sock.open = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
