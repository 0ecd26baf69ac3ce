"""The input side of a session: bot-rate chunks in, speech events and listener frames out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from bridge.audio.decimate import Decimator
from bridge.audio.echo_guard import EchoGuard
from bridge.audio.framer import Framer, frame_samples
from bridge.audio.resample import Quality, StreamResampler
from bridge.audio.vad import VAD_RATE, SpeechEvent, SpeechStopped, VoiceActivityDetector


class RateConverter(Protocol):
    """A stream rate converter: a StreamResampler, or the VAD's Decimator."""

    out_rate: int

    @property
    def delay_ms(self) -> float: ...

    def process(self, chunk: np.ndarray) -> np.ndarray: ...


class FrameStream:
    """Convert a chunk stream to one rate (state kept across chunks) and cut fixed frames."""

    def __init__(self, converter: RateConverter, frame_ms: int, capacity_ms: int) -> None:
        self.converter = converter
        rate = converter.out_rate
        size = frame_samples(rate, frame_ms)
        self.framer = Framer(size, max(size, rate * capacity_ms // 1000))

    def feed(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the frames this chunk completes (views of one reused array)."""
        return self.framer.feed(self.converter.process(chunk))


class InputPipeline:
    """Runs VAD at 8 kHz (a whole-factor decimation) and frames audio at each listener rate,
    resampled at `quality`.

    feed() yields speech events and (rate, frame) pairs; frames are reused views: copy to keep.
    """

    def __init__(
        self,
        bot_rate: int,
        listen_rates: set[int],
        frame_ms: int,
        vad: VoiceActivityDetector,
        capacity_ms: int,
        quality: Quality = "HQ",
        echo_guard: EchoGuard | None = None,
    ) -> None:
        self.vad = vad
        self.echo_guard = echo_guard  # frames it calls the bot's own echo are no speech
        self._vad_stream = FrameStream(Decimator(bot_rate, VAD_RATE), frame_ms, capacity_ms)
        self._listen_streams = {
            rate: FrameStream(StreamResampler(bot_rate, rate, quality), frame_ms, capacity_ms)
            for rate in listen_rates
        }
        self.samples_in = 0
        self.speech_segments = 0

    @property
    def vad_delay_ms(self) -> float:
        """How late the VAD hears the meeting: its decimator's group delay."""
        return self._vad_stream.converter.delay_ms

    def feed(self, chunk: np.ndarray) -> Iterator[SpeechEvent | tuple[int, np.ndarray]]:
        """Push one bot chunk through VAD and framing."""
        self.samples_in += len(chunk)
        guard = self.echo_guard
        for frame in self._vad_stream.feed(chunk):
            masked = guard is not None and guard.is_echo(frame, self.vad.position_ms)
            event = self.vad.process(frame, masked)
            if event is not None:
                self.speech_segments += isinstance(event, SpeechStopped)
                yield event
        for rate, stream in self._listen_streams.items():
            for frame in stream.feed(chunk):
                yield rate, frame
