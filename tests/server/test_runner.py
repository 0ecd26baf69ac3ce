"""The responder runner: plain hooks run inline, async ones in the responder's task, in order."""

import asyncio
import logging

import numpy as np
import pytest

from bridge.responder import Responder
from bridge.server.events import Event
from bridge.server.runner import ResponderRunner, inline_hooks


class Listener(Responder):
    """on_audio is a plain function; on_event waits until the test lets it finish."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.release = asyncio.Event()

    def on_audio(self, frame: np.ndarray) -> None:
        if frame[0] < 0:
            raise ValueError("a bug in a plain hook")
        self.heard.append(f"audio {frame[0]}")

    async def on_event(self, event: Event) -> None:
        await self.release.wait()
        self.heard.append(f"event {event['type']}")


def frame(value: int) -> np.ndarray:
    return np.full(480, value, dtype=np.int16)


async def started(responder: Responder) -> ResponderRunner:
    runner = ResponderRunner(responder, queue_size=8, session_id="s")
    await asyncio.sleep(0)  # on_start has run; the task waits for its queue
    return runner


def test_plain_hooks_are_found_by_name():
    assert inline_hooks(Listener()) == {"audio"}
    assert inline_hooks(Responder(None, None)) == frozenset()  # type: ignore[arg-type]


def test_the_hooks_delivered_are_those_the_class_overrides():
    assert Listener().hooks == {"audio", "event"}
    assert Responder(None, None).hooks == frozenset()  # type: ignore[arg-type]

    class Louder(Listener):  # a subclass keeps its parent's overrides and adds its own
        async def on_turn_end(self, event: object) -> None:
            pass

    assert Louder().hooks == {"audio", "event", "turn_end"}


async def test_a_hook_the_responder_does_not_handle_is_never_queued():
    responder = Listener()
    responder.release.set()
    runner = ResponderRunner(responder, queue_size=1, session_id="s")
    await asyncio.sleep(0)
    for _ in range(3):  # a queue of one would overflow on the second, were they queued
        assert runner.offer("turn_start", object())
    assert runner._queue.empty() and not runner.dropped
    runner.offer("event", {"type": "speech_start"})
    await asyncio.sleep(0.01)
    assert responder.heard == ["event speech_start"]
    await runner.stop(1)


async def test_a_plain_hook_runs_before_offer_returns():
    responder = Listener()
    runner = await started(responder)
    assert runner.offer("audio", frame(1))
    assert responder.heard == ["audio 1"]
    await runner.stop(1)


async def test_a_plain_hook_waits_behind_an_async_hook_queued_before_it():
    responder = Listener()
    runner = await started(responder)
    runner.offer("event", {"type": "speech_start"})
    runner.offer("audio", frame(2))
    await asyncio.sleep(0.01)
    assert responder.heard == []  # the audio did not overtake the pending event
    responder.release.set()
    await asyncio.sleep(0.01)
    assert responder.heard == ["event speech_start", "audio 2"]
    runner.offer("audio", frame(3))
    assert responder.heard[-1] == "audio 3"  # inline again once the queue is empty
    await runner.stop(1)


async def test_a_plain_hook_that_raises_is_logged_and_counted(caplog):
    responder = Listener()
    runner = await started(responder)
    with caplog.at_level(logging.ERROR, logger="bridge.server.runner"):
        assert runner.offer("audio", frame(-1))
        runner.offer("audio", frame(4))
    assert runner.errors == 1 and responder.heard == ["audio 4"]
    assert "Listener raised in on_audio; the session goes on" in caplog.text
    (record,) = [r for r in caplog.records if r.exc_info]  # the hook's own, with its frames
    assert isinstance(record.exc_info[1], ValueError) and "frame[0] < 0" not in caplog.text
    assert "a bug in a plain hook" in caplog.text and "in on_audio" in caplog.text
    await runner.stop(1)


class Cancels(Responder):
    def __init__(self) -> None:
        pass

    def on_audio(self, frame: np.ndarray) -> None:
        raise asyncio.CancelledError  # not a bug of the hook's: it is not swallowed


async def test_a_plain_hook_raising_what_is_no_exception_propagates_and_frees_the_runner():
    runner = await started(Cancels())
    with pytest.raises(asyncio.CancelledError):
        runner.offer("audio", frame(1))
    assert runner.errors == 0 and not runner._busy  # the next offer runs inline again
    with pytest.raises(asyncio.CancelledError):
        runner.offer("audio", frame(2))
    await runner.stop(1)


class Relay(Responder):
    """A plain on_audio whose work feeds it again (as a sent frame comes back to a listener)."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.runner: ResponderRunner | None = None

    def on_audio(self, frame: np.ndarray) -> None:
        self.heard.append(f"begin {frame[0]}")
        if frame[0] == 1 and self.runner is not None:
            self.runner.offer("audio", frame + 1)
        self.heard.append(f"end {frame[0]}")


async def test_a_plain_hook_is_not_entered_again_from_within_itself():
    responder = Relay()
    runner = await started(responder)
    responder.runner = runner
    runner.offer("audio", frame(1))
    await asyncio.sleep(0.01)
    assert responder.heard == ["begin 1", "end 1", "begin 2", "end 2"]
    await runner.stop(1)
