"""The input side of a session: bot-rate chunks in, speech events and listener blocks out.

A chunk is worked on whole: one call decimates it to the VAD's 8 kHz and cuts its whole
frames (bridge/audio/_vadcore.c), another judges them; each listener rate gets one
conversion and one framing, and the chunk's whole frames as one block.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bridge.audio._vadcore import VadFramer
from bridge.audio.echo_guard import EchoGuard
from bridge.audio.framer import Framer, frame_samples
from bridge.audio.resample import Quality, StreamResampler
from bridge.audio.vad import VAD_RATE, SpeechEvent, VoiceActivityDetector

Block = tuple[int, np.ndarray]  # (rate, whole frames at that rate)


class FrameStream:
    """Resample a chunk stream to one rate (state kept across chunks) and cut whole frames."""

    def __init__(self, resampler: StreamResampler, frame_ms: int) -> None:
        self.resampler = resampler
        self.framer = Framer(frame_samples(resampler.out_rate, frame_ms))

    def take(self, chunk: np.ndarray) -> np.ndarray:
        """The whole frames this chunk completes, as one block (maybe a view of chunk)."""
        return self.framer.take(self.resampler.process(chunk))


def listen_take(
    bot_rate: int, rate: int, frame_ms: int, quality: Quality
) -> Callable[[np.ndarray], np.ndarray]:
    """What turns a bot chunk into a listener's block at rate: a framer alone at the bot's
    own rate (two calls a chunk fewer), else a resampling FrameStream."""
    if rate == bot_rate:
        return Framer(frame_samples(rate, frame_ms)).take
    return FrameStream(StreamResampler(bot_rate, rate, quality), frame_ms).take


class InputPipeline:
    """Runs VAD at 8 kHz (the mean of each group of bot_rate / 8000 samples: no resampler)
    and frames audio at each listener rate, resampled at `quality`.

    feed() hands each speech event to `hear` as the VAD's frame that causes it is judged
    (so `hear` sees the VAD as it was then), and returns the chunk's (rate, block) pairs;
    a block may be a view of the chunk: copy to keep. `judged` says whether that chunk
    completed a VAD frame (a 10 ms chunk completes a 20 ms frame every other time).
    """

    def __init__(
        self,
        bot_rate: int,
        listen_rates: set[int],
        frame_ms: int,
        vad: VoiceActivityDetector,
        quality: Quality = "HQ",
        echo_guard: EchoGuard | None = None,
    ) -> None:
        self.vad = vad
        self.echo_guard = echo_guard  # frames it calls the bot's own echo are no speech
        self._vad_frame = frame_samples(VAD_RATE, frame_ms)
        self._vad_input = VadFramer(bot_rate, VAD_RATE, self._vad_frame)
        self._frame_ms = frame_ms
        self._listen_takes = [  # the bot's own rate is framed as it comes, without a resampler
            (rate, listen_take(bot_rate, rate, frame_ms, quality)) for rate in sorted(listen_rates)
        ]
        self.samples_in = 0
        self.judged = False
        self._frame = frame_samples(bot_rate, frame_ms)  # every frame's, at the bot's rate
        self._aligned = listen_rates <= {bot_rate}  # no resampler: frames end together

    @property
    def speech_segments(self) -> int:
        """Speech segments the VAD has ended."""
        return self.vad.segments

    @property
    def vad_delay_ms(self) -> float:
        """How late the VAD hears the meeting: its decimation's group delay."""
        return self._vad_input.delay_ms

    def samples_wanted(self) -> int:
        """Samples at the bot's rate that complete the next frame, for the VAD and every
        listener (all at the bot's rate, so their frames end at the same samples): a chunk
        of fewer completes none and may wait for the next. 0 when a resampling listener's
        frames end elsewhere."""
        return self._frame - self.samples_in % self._frame if self._aligned else 0

    def feed(self, chunk: np.ndarray, hear: Callable[[SpeechEvent], None]) -> list[Block]:
        """Push one bot chunk through the VAD (its events to `hear`) and framing: a block
        (maybe empty) for each listening rate."""
        self.samples_in += len(chunk)
        block = self._vad_input.take(chunk)  # the chunk's whole 8 kHz frames, as s16 bytes
        if block:
            masks = None if self.echo_guard is None else self._echo_masks(block)
            self.vad.process_block(block, masks, hear)
        self.judged = bool(block)
        blocks = []  # a loop, not a comprehension: that is one more frame a chunk in 3.11
        for rate, take in self._listen_takes:
            blocks.append((rate, take(chunk)))
        return blocks

    def _echo_masks(self, block: bytes) -> bytes:
        """A byte a VAD frame: 1 where the echo guard hears the bot's own voice come back."""
        guard, size, start_ms = self.echo_guard, self._vad_frame, self.vad.position_ms
        assert guard is not None
        samples = np.frombuffer(block, dtype=np.int16)
        return bytes(
            bool(guard.is_echo(samples[at : at + size], start_ms + n * self._frame_ms))
            for n, at in enumerate(range(0, len(samples), size))
        )
