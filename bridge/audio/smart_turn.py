"""The optional semantic end-of-turn stage: Smart Turn v3, an ONNX model over a turn's audio.

Smart Turn (by Daily, shipped in the pipecat-ai wheel: `pip install -e '.[smart-turn]'`)
reads the last 8 s of a turn as Whisper's 80-band log-mel spectrogram and says how likely
the speaker has finished: prosody and words, not the length of the quiet. The features are
computed here with numpy (16 kHz, 25 ms Hann windows every 10 ms, Slaney mel bands up to
8 kHz, log10 clamped 8 decades below the peak); onnxruntime runs the model on one thread.
docs/turns.md weighs it on the conversation corpus against the acoustic policy.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

RATE = 16000
WINDOW_S = 8  # the model hears this much of the turn's end
N_FFT = 400
HOP = 160
N_MELS = 80
MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


def slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Hz to mels on the Slaney scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3 / 200
    log_part = 15 + np.log(np.maximum(hz, 1e-10) / 1000) * 27 / np.log(6.4)
    return np.where(hz >= 1000, log_part, linear)


def slaney_hz(mel: np.ndarray) -> np.ndarray:
    """Mels on the Slaney scale back to Hz."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200 / 3
    log_part = 1000 * np.exp((mel - 15) * np.log(6.4) / 27)
    return np.where(mel >= 15, log_part, linear)


@cache
def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular filters, area-normalised (Slaney), 0-8 kHz."""
    bins = np.linspace(0, RATE / 2, N_FFT // 2 + 1)
    edges = slaney_hz(np.linspace(slaney_mel(0.0), slaney_mel(RATE / 2), N_MELS + 2))
    lower = (bins[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - bins[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    filters = np.maximum(0, np.minimum(lower, upper))
    return (filters * (2 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(N_MELS, 800) features of the last WINDOW_S of 16 kHz s16 audio (zeros before it)."""
    audio = samples[-WINDOW_S * RATE :].astype(np.float32) / 32768
    audio = np.concatenate([np.zeros(WINDOW_S * RATE - len(audio), np.float32), audio])
    audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:-1]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = np.log10(np.maximum(mel_filters() @ power.T.astype(np.float32), 1e-10))
    return ((np.maximum(mel, mel.max() - 8) + 4) / 4).astype(np.float32)


def bundled_model() -> Path:
    """The Smart Turn ONNX file the installed pipecat-ai wheel ships, found without importing
    pipecat (ImportError if it is not installed)."""
    try:
        path = Path(str(metadata.distribution("pipecat-ai").locate_file(MODEL_FILE)))
    except metadata.PackageNotFoundError as exc:
        raise ImportError("pipecat-ai is not installed: pip install -e '.[smart-turn]'") from exc
    if not path.is_file():
        raise ImportError(f"{MODEL_FILE} is not in the installed pipecat-ai")
    return path


class SmartTurn:
    """complete(turn) -> the model's probability that a 16 kHz turn's speaker has finished."""

    def __init__(self, model: Path | None = None) -> None:
        import onnxruntime  # the optional extra: only who builds one needs it

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model or bundled_model()), options, providers=["CPUExecutionProvider"]
        )

    def complete(self, turn: np.ndarray) -> float:
        """Blocking, tens of ms on one core: run it off the event loop."""
        features = log_mel(turn)[None]
        (out,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])
