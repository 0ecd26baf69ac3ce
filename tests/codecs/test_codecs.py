import io
import re
import struct
import wave

import numpy as np
import pytest

from bridge.codecs.pcm import f32_to_s16, s16_to_f32, to_s16
from bridge.codecs.wav import WavError, WavWriter, read_wav, write_wav
from tests.sounds import ALSA, riff_wav, tone, unplayable_wavs


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


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("garbage", "not a readable PCM WAV"),
        ("8-bit", "only 16-bit PCM WAV is supported, not 8-bit"),
        ("24-bit", "only 16-bit integer PCM WAV"),
        ("float", "only 16-bit integer PCM WAV"),
        ("zero-channel", "not a readable PCM WAV (bad # of channels)"),
        ("1 Hz", "sample rate 1 Hz is outside 8000-96000 Hz"),
        ("5 channels", "5 channels: only mono or stereo"),
    ],
)
def test_unplayable_wavs_are_refused_saying_why(tmp_path, kind, why):
    with pytest.raises(WavError, match=re.escape(why)):
        read_wav(io.BytesIO(unplayable_wavs(tmp_path)[kind]))


def test_a_wav_longer_than_max_s_is_refused_from_its_header_alone():
    long = riff_wav(bytes(2 * 8000 * 11), 8000)  # 11 s
    with pytest.raises(WavError, match=r"11\.0 s of audio is longer than the 10 s allowed"):
        read_wav(io.BytesIO(long), max_s=10)
    samples, rate = read_wav(io.BytesIO(long), max_s=11)
    assert (len(samples), rate) == (8000 * 11, 8000)
    an_hour = struct.pack("<I", 2 * 8000 * 3600)  # a header that lies: 3200 bytes follow it
    lying = riff_wav(bytes(3200), 8000).replace(struct.pack("<I", 3200), an_hour)
    with pytest.raises(WavError, match=r"3600\.0 s of audio is longer"):
        read_wav(io.BytesIO(lying), max_s=10)
