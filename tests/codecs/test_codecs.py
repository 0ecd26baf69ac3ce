import wave

import numpy as np
import pytest

from bridge.codecs.pcm import f32_to_s16, s16_to_f32, to_s16
from bridge.codecs.wav import WavWriter, read_wav, write_wav
from tests.sounds import ALSA, tone


def test_s16_f32_round_trip():
    samples = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert np.array_equal(f32_to_s16(s16_to_f32(samples)), samples)


def test_f32_clips_instead_of_wrapping():
    assert f32_to_s16(np.array([1.5, -1.5, 0.5])).tolist() == [32767, -32768, 16384]


def test_to_s16_accepts_bytes_int16_and_float():
    s16 = np.array([1, 2], dtype=np.int16)
    assert to_s16(s16) is s16
    assert to_s16(s16.tobytes()).tolist() == [1, 2]
    assert to_s16(np.array([0.5], dtype=np.float64)).tolist() == [16384]
    with pytest.raises(ValueError, match="even"):
        to_s16(b"\x00")
    with pytest.raises(TypeError):
        to_s16(np.array([1], dtype=np.int32))


def test_read_a_real_recording_at_another_rate():
    native, rate = read_wav(ALSA / "Front_Left.wav")
    assert rate == 48000
    resampled, rate = read_wav(ALSA / "Front_Left.wav", 16000)
    assert rate == 16000
    assert abs(len(resampled) - len(native) / 3) <= 1


def test_stereo_is_averaged(tmp_path):
    left, right = tone(300, 0.1, 8000), np.zeros(800, dtype=np.int16)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.column_stack([left, right]).tobytes())
    mono, _ = read_wav(path)
    assert np.abs(mono.astype(int) - left.astype(int) // 2).max() <= 1


def test_writer_leaves_a_valid_file_at_every_write(tmp_path):
    path = tmp_path / "stream.wav"
    writer = WavWriter(path, 24000)
    writer.write(tone(440, 0.5, 24000))
    # not closed yet: the header already describes what was written
    data, rate = read_wav(path)
    assert rate == 24000 and len(data) == 12000
    writer.close()
    write_wav(tmp_path / "whole.wav", data, 24000)
    assert np.array_equal(read_wav(tmp_path / "whole.wav")[0], data)
