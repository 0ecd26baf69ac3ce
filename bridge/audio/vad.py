"""Voice activity: webrtcvad per frame, smoothed into speech start/stop events with hangover."""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import _webrtcvad  # webrtcvad's extension, called without its wrapper's checks
import numpy as np
import webrtcvad

VAD_RATE = 8000  # webrtcvad's own rate: at 16 kHz it halves the rate itself first


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at `at_ms` of the session's input stream."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Speech ended at `at_ms`; the segment lasted `duration_ms`."""

    at_ms: float
    duration_ms: float


@dataclass(frozen=True, slots=True)
class SpeechOnset:
    """A run of voiced frames began at `at_ms`: maybe speech, decided later by SpeechStarted.

    Sent as soon as `onset_ms` of voice is heard, long before the start window fills, for
    decisions that are cheap to undo (pausing the bot's playout).
    """

    at_ms: float


SpeechEvent = SpeechOnset | SpeechStarted | SpeechStopped


@functools.cache
def windowed_dft(size: int) -> np.ndarray:
    """Hann-windowed DFT matrix for bins 2 to size / 2 (bins 0-1 hold DC and hum): for a VAD
    frame one matrix product costs less than numpy's FFT call and its windowing. One per
    size, shared read-only by every session (100 KB at 20 ms: per session it was most of
    a session's memory)."""
    n = np.arange(size)[:, None]
    k = np.arange(2, size // 2 + 1)[None, :]
    dft = (np.hanning(size)[:, None] * np.exp(-2j * np.pi * n * k / size)).astype(np.complex64)
    dft.flags.writeable = False
    return dft


def spectral_flatness(frame: np.ndarray, dft: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum: near 0 for voice, high for noise."""
    magnitude = np.abs(frame @ dft)
    magnitude += 3e-5  # silence: a flat floor, not log(0)
    n = len(magnitude)
    # log power is twice log magnitude; the power sum is a dot product: few numpy calls
    power_sum = np.dot(magnitude, magnitude)
    return math.exp(2 * np.log(magnitude, out=magnitude).sum() / n) * n / power_sum


class VoteWindow:
    """Votes of the last `size` frames; a frame webrtcvad calls voiced keeps a copy (pending)
    until a decision needs the spectral gate's verdict on it, so most frames never need one.

    Decisions are the same as judging every frame at once: they depend only on counts.
    """

    def __init__(self, size: int, judge: Callable[[np.ndarray], bool]) -> None:
        self._slots: deque[bool | np.ndarray] = deque(maxlen=size)
        self._size = size
        self._judge = judge
        self._voiced = 0  # slots judged voiced
        self._pending = 0  # slots waiting for the gate

    @property
    def full(self) -> bool:
        return len(self._slots) == self._size

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def votes(self) -> int:
        """Slots voiced or waiting for the gate: an upper bound on the voiced ones."""
        return self._voiced + self._pending

    def push(self, vote: bool | np.ndarray) -> None:
        """Add a frame's vote: False, True, or a copy of the frame when the gate must judge it."""
        slots = self._slots
        if len(slots) == self._size and (oldest := slots[0]) is not False:
            self._count(oldest, -1)
        slots.append(vote)
        if vote is not False:
            self._count(vote, 1)

    def at_least_voiced(self, needed: int) -> bool:
        """Whether `needed` slots are voiced; judges pending ones (newest first) until it knows."""
        slots = self._slots
        for i in range(len(slots) - 1, -1, -1):  # the newest stay longest: their verdict lasts
            if self._voiced >= needed or self._voiced + self._pending < needed:
                break
            if isinstance(slots[i], np.ndarray):
                self._count(slots[i], -1)
                slots[i] = self._judge(slots[i])
                self._count(slots[i], 1)
        return self._voiced >= needed

    def clear(self) -> None:
        self._slots.clear()
        self._voiced = self._pending = 0

    def _count(self, vote: bool | np.ndarray, sign: int) -> None:
        if isinstance(vote, np.ndarray):
            self._pending += sign
        else:
            self._voiced += sign * vote


class VoiceActivityDetector:
    """Speech starts when most frames of the start window are voiced, stops after a quiet window.

    A frame is voiced when webrtcvad says so and its spectrum is not flat: webrtcvad alone
    fires on steady broadband noise (fans, hiss), whose spectral flatness is far above
    voice's. Feed 8 kHz s16 frames of exactly frame_ms; events lag the audio by one window.
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
        onset_ms: int = 60,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._judge_voice = functools.partial(_webrtcvad.process, self._vad._vad, VAD_RATE)
        self._dft = windowed_dft(VAD_RATE * frame_ms // 1000)
        self._max_flatness = max_flatness
        self._frame_ms = frame_ms
        start_frames, stop_frames = max(1, start_ms // frame_ms), max(1, stop_ms // frame_ms)
        self._start = VoteWindow(start_frames, self._not_flat)
        self._stop = VoteWindow(stop_frames, self._not_flat)
        self._voiced_to_start = math.ceil(self.START_RATIO * start_frames)
        # the segment goes on while more than (1 - STOP_RATIO) of the stop window is voiced
        self._voiced_to_go_on = stop_frames - math.ceil(self.STOP_RATIO * stop_frames) + 1
        self._onset_frames = max(1, onset_ms // frame_ms)
        self._run = 0  # consecutive frames webrtcvad calls voiced
        self._frames = 0
        self._started_at = 0.0
        self.speaking = False
        self.last_voiced_ms = -math.inf  # stream time at the end of the last frame voiced

    @property
    def onset_pending(self) -> bool:
        """Not in speech, but the start window holds voice that may yet open a segment."""
        return not self.speaking and len(self._start) > 0 and self._start.votes >= 2

    @property
    def position_ms(self) -> float:
        """Stream time at the end of the last frame processed."""
        return self._frames * self._frame_ms

    def process(self, frame: np.ndarray, masked: bool = False) -> SpeechEvent | None:
        """Classify one frame; returns an event when the speaking state changes (or an onset).

        A masked frame counts as unvoiced whatever it holds (the bot's own voice come back).
        """
        vote: bool | np.ndarray = not masked and self._judge_voice(frame.tobytes(), len(frame))
        self._frames += 1
        self._run = self._run + 1 if vote else 0
        if vote:
            self.last_voiced_ms = self.position_ms
            if self._max_flatness < 1:
                vote = frame.copy()  # the gate judges it later, if a decision needs it
        window = self._stop if self.speaking else self._start
        window.push(vote)
        onset = None
        heard_onset = self._run == self._onset_frames and not self.speaking
        if heard_onset and (self._max_flatness >= 1 or self._not_flat(frame)):
            onset = SpeechOnset(self.position_ms - self._run * self._frame_ms)
        if not window.full:
            return onset
        if not self.speaking:
            starts = window.at_least_voiced(self._voiced_to_start)
            return self._begin(len(window)) if starts else onset
        return None if window.at_least_voiced(self._voiced_to_go_on) else self._end(len(window))

    def _not_flat(self, frame: np.ndarray) -> bool:
        return spectral_flatness(frame, self._dft) <= self._max_flatness

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
