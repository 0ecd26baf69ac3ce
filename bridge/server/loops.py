"""The event loop to run on: uvloop when installed (a dependency but on Windows), else asyncio's."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopChoice = Literal["auto", "asyncio", "uvloop"]


def run(main: Coroutine[Any, Any, T], choice: LoopChoice = "auto") -> T:
    """asyncio.run on the chosen loop; "auto" takes uvloop if it can be imported."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError("uvloop is not installed (pip install uvloop)") from None
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)
