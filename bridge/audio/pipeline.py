"""The input side of a session: bot-rate chunks in, speech events and listener frames out."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bridge.audio.framer import Framer, frame_samples
from bridge.audio.resample import Quality, StreamResampler
from bridge.audio.vad import VAD_RATE, SpeechEvent, VoiceActivityDetector


class FrameStream:
    """Resample a chunk stream to one rate (state kept across chunks) and cut fixed frames."""

    def __init__(
        self, in_rate: int, out_rate: int, frame_ms: int, capacity_ms: int, quality: Quality
    ) -> None:
        self.resampler = StreamResampler(in_rate, out_rate, quality)
        size = frame_samples(out_rate, frame_ms)
        self.framer = Framer(size, max(size, out_rate * capacity_ms // 1000))

    def feed(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the frames this chunk completes (views of one reused array)."""
        return self.framer.feed(self.resampler.process(chunk))


# webrtcvad judges the band below 4 kHz (it works at 8 kHz inside), so the VAD's resampler
# needs no steep anti-alias filter: QQ adds 0.06 ms of delay where HQ adds 21 ms to speech
# detection and barge-in, and keeps a third of HQ's state per session.
VAD_QUALITY: Quality = "QQ"


class InputPipeline:
    """Runs VAD at 16 kHz and frames audio at each listener rate, resampled at `quality`.

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
    ) -> None:
        self.vad = vad
        self._vad_stream = FrameStream(bot_rate, VAD_RATE, frame_ms, capacity_ms, VAD_QUALITY)
        # 16 kHz listeners (speech to text) get the VAD's frames when they are the same audio
        self._share_vad_frames = VAD_RATE in listen_rates and (
            bot_rate == VAD_RATE or quality == VAD_QUALITY
        )
        shared = {VAD_RATE} if self._share_vad_frames else set()
        self._listen_streams = {
            rate: FrameStream(bot_rate, rate, frame_ms, capacity_ms, quality)
            for rate in listen_rates - shared
        }
        self.samples_in = 0
        self.speech_segments = 0

    @property
    def vad_delay_ms(self) -> float:
        """How late the VAD hears the meeting: its resampler's filter delay."""
        return self._vad_stream.resampler.delay_ms

    def feed(self, chunk: np.ndarray) -> Iterator[SpeechEvent | tuple[int, np.ndarray]]:
        """Push one bot chunk through VAD and framing."""
        self.samples_in += len(chunk)
        for frame in self._vad_stream.feed(chunk):
            event = self.vad.process(frame)
            if event is not None:
                self.speech_segments += not self.vad.speaking
                yield event
            if self._share_vad_frames:
                yield VAD_RATE, frame
        for rate, stream in self._listen_streams.items():
            for frame in stream.feed(chunk):
                yield rate, frame
