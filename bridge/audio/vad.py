"""Voice activity: webrtcvad per frame, smoothed into speech start/stop events with hangover."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import webrtcvad

from bridge.audio._vadcore import Core
from bridge.audio._vadcore import spectral_flatness as _flatness

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


def spectral_flatness(frame: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum (Hann window, bins 2 and up: 0-1
    hold DC and hum): near 0 for voice, high for noise. Computed in bridge/audio/_vadcore.c
    by a mixed-radix FFT in double precision; frames of an even 4 to 480 samples."""
    return _flatness(np.ascontiguousarray(frame, dtype=np.int16))


class VoiceActivityDetector(Core):
    """Speech starts when most frames of the start window are voiced, stops after a quiet window.

    A frame is voiced when webrtcvad says so and its spectrum is not flat: webrtcvad alone
    fires on steady broadband noise (fans, hiss), whose spectral flatness is far above
    voice's. Feed 8 kHz s16 frames of exactly frame_ms; events lag the audio by one window.

    A Core (bridge/audio/_vadcore.c), so every call and attribute is the C type's own, with
    no Python frame on the way (it is asked several times a chunk):
    - `process(frame, masked=False)`: classify one frame; its event (an onset, a start or
      a stop) or None. A masked frame is unvoiced whatever it holds (the bot's own voice
      come back).
    - `process_block(block, masks, hear)`: each frame of a block of whole frames (masks: a
      byte a frame, nonzero for masked, or None); each event goes to hear() as its frame
      is judged.
    - `speaking` (in a segment), `position_ms` (stream time at the last frame's end),
      `last_voiced_ms` (at the end of the last frame webrtcvad voiced; -inf before any),
      `onset_pending` (not in speech, but the start window holds voice that may yet open a
      segment), `segments` (ended so far).
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
        start_frames, stop_frames = max(1, start_ms // frame_ms), max(1, stop_ms // frame_ms)
        super().__init__(
            vad=webrtcvad.Vad(aggressiveness)._vad,  # its capsule: the Core calls webrtcvad's C
            rate=VAD_RATE,
            max_flatness=max_flatness,  # 1 or more: no gate
            events=(SpeechOnset, SpeechStarted, SpeechStopped),
            frame_size=VAD_RATE * frame_ms // 1000,
            frame_ms=float(frame_ms),
            start_frames=start_frames,
            to_start=math.ceil(self.START_RATIO * start_frames),
            stop_frames=stop_frames,
            # the segment goes on while more than (1 - STOP_RATIO) of the window is voiced
            to_go_on=stop_frames - math.ceil(self.STOP_RATIO * stop_frames) + 1,
            onset_frames=max(1, onset_ms // frame_ms),
        )
