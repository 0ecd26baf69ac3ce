"""Voice activity: webrtcvad per frame, smoothed into speech start/stop events with hangover."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

VAD_RATE = 16000


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at `at_ms` of the session's input stream."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Speech ended at `at_ms`; the segment lasted `duration_ms`."""

    at_ms: float
    duration_ms: float


SpeechEvent = SpeechStarted | SpeechStopped


def spectral_flatness(frame: np.ndarray, window: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum: near 0 for voice, high for noise."""
    magnitude = np.abs(np.fft.rfft(frame * window)[2:])  # bins 0-1 hold DC and hum
    magnitude += 3e-5  # silence: a flat floor, not log(0)
    n = len(magnitude)
    # log power is twice log magnitude; the power sum is a dot product: few numpy calls
    power_sum = np.dot(magnitude, magnitude)
    return math.exp(2 * np.log(magnitude, out=magnitude).sum() / n) * n / power_sum


class VoiceActivityDetector:
    """Speech starts when most frames of the start window are voiced, stops after a quiet window.

    A frame is voiced when webrtcvad says so and its spectrum is not flat: webrtcvad alone
    fires on steady broadband noise (fans, hiss), whose spectral flatness is far above
    voice's. Feed 16 kHz s16 frames of exactly frame_ms; events lag the audio by one window.
    """

    START_RATIO = 0.8  # voiced share of the start window that opens a segment
    STOP_RATIO = 0.9  # unvoiced share of the stop window that closes it

    def __init__(
        self,
        frame_ms: int,
        aggressiveness: int = 3,
        start_ms: int = 200,
        stop_ms: int = 500,
        max_flatness: float = 0.1,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._window = np.hanning(VAD_RATE * frame_ms // 1000)
        self._max_flatness = max_flatness
        self._frame_ms = frame_ms
        self._start = deque[bool](maxlen=max(1, start_ms // frame_ms))
        self._stop = deque[bool](maxlen=max(1, stop_ms // frame_ms))
        self._frames = 0
        self._started_at = 0.0
        self.speaking = False

    @property
    def position_ms(self) -> float:
        """Stream time at the end of the last frame processed."""
        return self._frames * self._frame_ms

    def process(self, frame: np.ndarray) -> SpeechEvent | None:
        """Classify one frame; returns an event when the speaking state changes."""
        voiced = self._vad.is_speech(frame.tobytes(), VAD_RATE) and (
            self._max_flatness >= 1 or spectral_flatness(frame, self._window) <= self._max_flatness
        )
        self._frames += 1
        window = self._stop if self.speaking else self._start
        window.append(voiced)
        if not self.speaking:
            if len(window) == window.maxlen and sum(window) >= self.START_RATIO * window.maxlen:
                return self._begin(len(window))
            return None
        if len(window) == window.maxlen and window.count(False) >= self.STOP_RATIO * window.maxlen:
            return self._end(len(window))
        return None

    def _begin(self, window_frames: int) -> SpeechStarted:
        self.speaking = True
        self._start.clear()
        self._started_at = self.position_ms - window_frames * self._frame_ms
        return SpeechStarted(self._started_at)

    def _end(self, window_frames: int) -> SpeechStopped:
        self.speaking = False
        self._stop.clear()
        at = self.position_ms - window_frames * self._frame_ms
        return SpeechStopped(at, at - self._started_at)
