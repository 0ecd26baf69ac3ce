"""Smart Turn's features (numpy only; the model itself is the optional extra's)."""

import numpy as np
import pytest

from bridge.audio.smart_turn import (
    N_MELS,
    RATE,
    WINDOW_S,
    bundled_model,
    log_mel,
    mel_filters,
    slaney_hz,
    slaney_mel,
)
from tests.sounds import recording


def test_the_slaney_scale_is_linear_to_1_khz_then_logarithmic():
    assert slaney_mel(1000.0) == pytest.approx(15.0)
    assert slaney_mel(500.0) == pytest.approx(7.5)
    assert slaney_mel(6400.0) == pytest.approx(15.0 + 27.0)  # 27 mels per factor 6.4
    hz = np.array([0.0, 300.0, 1000.0, 4000.0, 8000.0])
    assert slaney_hz(slaney_mel(hz)) == pytest.approx(hz)


def test_a_tone_lights_the_band_around_its_frequency():
    t = np.arange(WINDOW_S * RATE) / RATE
    for hz in (300.0, 1000.0, 3000.0):
        tone = (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
        features = log_mel(tone)
        assert features.shape == (N_MELS, WINDOW_S * RATE // 160)
        band = int(np.argmax(features[:, 400]))
        centre = slaney_hz(np.linspace(slaney_mel(0.0), slaney_mel(RATE / 2), N_MELS + 2))
        assert centre[band] <= hz * 1.15 and centre[band + 2] >= hz / 1.15


def test_short_speech_is_heard_at_the_end_of_the_window_after_zeros():
    speech = recording("Front_Center", RATE)  # 1.5 s: the 8 s window is zeros before it
    features = log_mel(speech)
    frames = len(speech) // 160
    quiet, spoken = features[:, : -frames - 10], features[:, -frames:]
    assert np.ptp(quiet) < 1e-3  # all zeros: one value, clamped 8 decades below the peak
    assert spoken.max() == pytest.approx(features.max())
    assert spoken.mean() > quiet.mean() + 0.4
    longer = np.concatenate([np.zeros(10 * RATE, np.int16), speech])
    assert log_mel(longer) == pytest.approx(features, abs=1e-4)  # only the last 8 s count


def test_the_filters_cover_the_spectrum_with_unit_area_triangles():
    filters = mel_filters()
    assert filters.shape == (N_MELS, 201)
    assert (filters >= 0).all() and (filters.max(axis=1) > 0).all()
    peaks = np.argmax(filters, axis=1)
    assert (np.diff(peaks) >= 0).all()  # low to high


def test_without_pipecat_ai_the_model_is_a_clear_import_error(monkeypatch):
    from importlib import metadata

    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(ImportError, match=r"\.\[smart-turn\]"):
        bundled_model()
