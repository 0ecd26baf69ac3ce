"""Real audio for the tests: the ALSA recordings, espeak-ng speech, tones and noise."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from bridge.codecs.wav import read_wav

ALSA = Path("/usr/share/sounds/alsa")


def recording(name: str, rate: int) -> np.ndarray:
    """A real human recording from alsa-utils (e.g. "Front_Left"), as mono s16 at rate."""
    return read_wav(ALSA / f"{name}.wav", rate)[0]


def espeak(text: str, rate: int, tmp_path: Path) -> np.ndarray:
    """text spoken by espeak-ng, as mono s16 at rate."""
    path = tmp_path / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    return read_wav(path, rate)[0]


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def white_noise(seconds: float, rate: int, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, int(seconds * rate))
    return np.clip(noise, -32768, 32767).astype(np.int16)


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)
