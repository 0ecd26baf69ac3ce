"""Real audio for the tests: the ALSA recordings, espeak-ng speech, tones and noise."""

from __future__ import annotations

import struct
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


def riff_wav(data: bytes, rate: int, channels: int = 1, bits: int = 16, fmt: int = 1) -> bytes:
    """A WAV file's bytes with exactly the header given (fmt 1: PCM, 3: float), even one no
    encoder would write (0 channels, 1 Hz): what a probe sends."""
    block = channels * bits // 8
    header = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    body = b"fmt " + struct.pack("<I", len(header)) + header
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def sox_wav(path: Path, *encoding: str) -> bytes:
    """A 0.2 s tone encoded by sox with these options (e.g. "-b", "24"), as file bytes."""
    subprocess.run(
        ["sox", "-n", "-r", "16000", *encoding, str(path), "synth", "0.2", "sine", "440"],
        check=True,
    )
    return path.read_bytes()


def unplayable_wavs(tmp_path: Path) -> dict[str, bytes]:
    """WAVs the bridge must refuse, by what is wrong with them."""
    return {
        "garbage": b"RIFF" + bytes(range(256)) * 4,
        "8-bit": sox_wav(tmp_path / "u8.wav", "-b", "8"),
        "24-bit": sox_wav(tmp_path / "s24.wav", "-b", "24"),
        "float": sox_wav(tmp_path / "f32.wav", "-e", "floating-point", "-b", "32"),
        "zero-channel": riff_wav(bytes(3200), 16000, channels=0),
        "1 Hz": riff_wav(bytes(10_000), 1),
        "5 channels": riff_wav(bytes(16000), 16000, channels=5),
    }
