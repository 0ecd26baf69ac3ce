"""Offline speech-to-text with pocketsphinx (optional extra `stt`), off the event loop.

One decoder per process, in one worker thread: loading the model takes about half a
second and tens of MB, and pocketsphinx is CPU-bound, so sessions queue for it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

STT_RATE = 16000
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pocketsphinx")
_local = threading.local()


def check_pocketsphinx() -> None:
    """Raise ValueError with the fix when pocketsphinx is not installed."""
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        raise ValueError("pocketsphinx is not installed: pip install 'speakbridge[stt]'") from None


def _decoder() -> Any:
    if not hasattr(_local, "decoder"):
        from pocketsphinx import Decoder

        _local.decoder = Decoder(samprate=STT_RATE, loglevel="FATAL")
    return _local.decoder


def _decode(samples: np.ndarray) -> str:
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(samples.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


async def transcribe(samples: np.ndarray) -> str:
    """The words pocketsphinx hears in 16 kHz s16 samples ("" for none)."""
    return await asyncio.get_running_loop().run_in_executor(_executor, _decode, samples)
