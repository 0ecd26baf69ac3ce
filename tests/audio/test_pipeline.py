"""The input pipeline: VAD on its own decimator, listeners at their configured quality."""

import numpy as np
import pytest

from bridge.audio.pipeline import InputPipeline
from bridge.audio.resample import StreamResampler
from bridge.audio.vad import VAD_RATE, SpeechOnset, SpeechStarted, VoiceActivityDetector
from tests.audio.test_vad_framer import chunk_sizes, reference_means
from tests.sounds import ALSA, recording, silence, white_noise

RATE = 24000


def run(pipeline: InputPipeline, signal: np.ndarray) -> tuple[list, dict[int, np.ndarray]]:
    return run_at(pipeline, signal, 480)  # 20 ms chunks at 24 kHz, as the bot sends


def run_at(pipeline: InputPipeline, signal: np.ndarray, chunk: int) -> tuple[list, dict]:
    events, frames = [], {}
    for at in range(0, len(signal), chunk):
        heard: list = []
        blocks = pipeline.feed(signal[at : at + chunk], heard.append)
        events += [e for e in heard if not isinstance(e, SpeechOnset)]
        for rate, block in blocks:
            assert len(block) % (rate // 50) == 0  # whole 20 ms frames
            frames.setdefault(rate, []).append(block.copy())
    return events, {rate: np.concatenate(f) for rate, f in frames.items()}


def test_listeners_at_16khz_hear_the_configured_quality_not_the_vads():
    speech = np.concatenate([silence(0.5, RATE), recording("Front_Left", RATE)])
    pipeline = InputPipeline(RATE, {16000, RATE}, 20, VoiceActivityDetector(20), "HQ")
    events, frames = run(pipeline, speech)
    hq = StreamResampler(RATE, 16000, "HQ")
    reference = np.concatenate(
        [hq.process(speech[at : at + 480]) for at in range(0, len(speech), 480)]
    )
    heard = frames[16000].astype(int)  # soxr dithers its s16 output: equal to 1 LSB or so
    assert np.abs(heard - reference[: len(heard)]).max() <= 2
    assert np.array_equal(frames[RATE], speech[: len(frames[RATE])])
    assert isinstance(events[0], SpeechStarted)
    assert pipeline.vad_delay_ms < 0.1 < 1 < hq.delay_ms  # the VAD does not wait for HQ's filter


def test_at_16khz_listeners_hear_the_bots_samples_unchanged():
    speech = recording("Front_Left", 16000)
    pipeline = InputPipeline(16000, {16000}, 20, VoiceActivityDetector(20), "HQ")
    events, frames = run_at(pipeline, speech, 320)
    assert np.array_equal(frames[16000], speech[: len(frames[16000])])
    assert pipeline.vad_delay_ms < 0.1 and isinstance(events[0], SpeechStarted)


def test_the_vad_hears_a_16khz_and_a_24khz_bot_alike():
    """Both rates decimate to the VAD's 8 kHz: the same speech gives the same segments."""
    found = {}
    for rate in (16000, 24000):
        gap = silence(1, rate)
        speech = np.concatenate(
            [gap, recording("Front_Left", rate), gap, recording("Rear_Center", rate), gap]
        )
        pipeline = InputPipeline(rate, {rate}, 20, VoiceActivityDetector(20), "HQ")
        events, _ = run_at(pipeline, speech, rate // 50)
        found[rate] = [(type(e).__name__, e.at_ms) for e in events]
    assert len(found[24000]) == 4  # two segments, each a start and a stop
    assert [kind for kind, _ in found[16000]] == [kind for kind, _ in found[24000]]
    for (_, at16), (_, at24) in zip(found[16000], found[24000], strict=True):
        assert abs(at16 - at24) <= 40  # two frames


def test_a_100ms_chunks_events_are_heard_as_the_vad_judges_their_frames():
    """The listener sees the VAD as it was at each event (its position, its last voiced
    frame), not as it is at the end of the chunk: a 100 ms chunk holds five VAD frames."""
    gap = silence(1, RATE)
    speech = np.concatenate([gap, recording("Front_Left", RATE), gap])
    vad = VoiceActivityDetector(20)
    pipeline = InputPipeline(RATE, {RATE}, 20, vad)
    seen = []

    def hear(event) -> None:
        seen.append((type(event).__name__, vad.position_ms))

    for at in range(0, len(speech), 2400):
        pipeline.feed(speech[at : at + 2400], hear)
    kinds = [kind for kind, _ in seen]
    assert "SpeechStarted" in kinds and "SpeechStopped" in kinds
    assert any(position % 100 for _, position in seen)  # mid-chunk, where they happened


def test_the_echo_guard_masks_the_same_frames_in_100ms_chunks_as_frame_by_frame(tmp_path):
    """The bot's own voice coming back 300 ms late at -12 dB: a 100 ms chunk's frames are
    judged by the guard in order, each at its own stream time, as frame by frame."""
    from bridge.audio.echo_guard import EchoGuard
    from bridge.audio.vad import VAD_RATE

    bot = np.concatenate([silence(0.5, VAD_RATE), recording("Front_Left", VAD_RATE)])
    heard = np.zeros(len(bot) + VAD_RATE, dtype=np.int16)
    delay = 300 * VAD_RATE // 1000
    heard[delay : delay + len(bot)] = (bot * 10 ** (-12 / 20)).astype(np.int16)
    heard = heard[: len(heard) // 800 * 800]

    def judged(chunk: int) -> list:
        guard, vad = EchoGuard(20, 150, 600), VoiceActivityDetector(20)
        pipeline = InputPipeline(VAD_RATE, {VAD_RATE}, 20, vad, echo_guard=guard)
        events: list = []
        for at in range(0, len(heard), chunk):
            for i in range(at, min(at + chunk, len(bot)), 160):  # the bot plays its frames
                guard.played(bot[i : i + 160], i * 1000 / VAD_RATE)
            pipeline.feed(heard[at : at + chunk], events.append)
        return [(type(e).__name__, e.at_ms) for e in events]

    frame_by_frame = judged(160)
    assert judged(800) == frame_by_frame
    assert "SpeechStarted" not in [kind for kind, _ in frame_by_frame[2:]]  # masked for good


@pytest.mark.parametrize("chunk", [7, 480, 2400, "random"])
@pytest.mark.parametrize("rate", [16000, 24000, 48000])
def test_the_vad_hears_the_whole_recordings_group_means_whatever_the_chunking(rate, chunk):
    """Every event (onsets too), at its time and at the VAD's position when heard, is the
    one the VAD gives frame by frame on the whole stream's group means."""
    gap = silence(0.7, rate)
    names = sorted(path.stem for path in ALSA.glob("*.wav"))
    speech = np.concatenate([gap, *(x for name in names for x in (recording(name, rate), gap))])
    signal = np.concatenate([speech, white_noise(2, rate, 3000)])

    def heard_by(vad: VoiceActivityDetector, found: list):
        return lambda event: found.append((event, vad.position_ms))

    reference_vad, expected = VoiceActivityDetector(20), []
    hear = heard_by(reference_vad, expected)
    means = reference_means(signal, rate // VAD_RATE)
    for at in range(0, len(means) - 159, 160):
        if (event := reference_vad.process(means[at : at + 160])) is not None:
            hear(event)
    vad, found = VoiceActivityDetector(20), []
    pipeline, at = InputPipeline(rate, {rate}, 20, vad), 0
    for n in chunk_sizes(chunk, len(signal)):
        pipeline.feed(signal[at : at + n], heard_by(vad, found))
        at += n
    assert found == expected
    assert sum(isinstance(event, SpeechStarted) for event, _ in found) >= len(names) - 1


@pytest.mark.parametrize("listen", [{RATE}, {16000}])
def test_a_chunk_short_of_the_samples_wanted_completes_no_frame(listen):
    """What samples_wanted promises is what feeding the chunk does: a shorter one has no VAD
    frame judged, no listener frame out; it promises so only when no resampler's delay
    moves the frames."""
    signal = np.concatenate([silence(0.2, RATE), recording("Front_Left", RATE)])
    pipeline = InputPipeline(RATE, listen, 20, VoiceActivityDetector(20))
    rng, at, said = np.random.default_rng(7), 0, []
    while at < len(signal):
        n = int(rng.choice([240, 480, 100, 700]))
        quiet = n < pipeline.samples_wanted()
        blocks = pipeline.feed(signal[at : at + n], lambda event: None)
        if quiet:
            assert not pipeline.judged and not any(len(block) for _, block in blocks)
        elif listen == {RATE}:  # at the bot's rate it is exact: a frame did complete
            assert pipeline.judged
        said.append(quiet)
        at += n
    assert any(said) == (listen == {RATE})


@pytest.mark.parametrize("listen", [{RATE}, {16000}])
def test_the_samples_wanted_are_the_fewest_that_complete_a_frame(listen):
    """samples_wanted() samples complete the next frame, one fewer does not; 0 when a
    resampler moves the frames."""
    signal = recording("Front_Left", RATE)
    pipeline = InputPipeline(RATE, listen, 20, VoiceActivityDetector(20))
    rng, at = np.random.default_rng(3), 0
    while at < len(signal) - 2000:
        wanted = pipeline.samples_wanted()
        if listen != {RATE}:
            assert wanted == 0
        else:
            assert 0 < wanted <= 480
            blocks = pipeline.feed(signal[at : at + wanted - 1], lambda event: None)
            assert not pipeline.judged and not any(len(block) for _, block in blocks)
            blocks = pipeline.feed(signal[at + wanted - 1 : at + wanted], lambda event: None)
            assert pipeline.judged and all(len(block) for _, block in blocks)
            at += wanted
        n = int(rng.choice([240, 480, 100, 700]))
        pipeline.feed(signal[at : at + n], lambda event: None)
        at += n


class Heard:
    """A session's side of receive(): what each hook and listener was given."""

    def __init__(self, pipeline: InputPipeline, frame: int = 0) -> None:
        self.events, self.ticks, self.larger, self.arrivals, self.odd = [], 0, [], [], []
        self.blocks: list[np.ndarray] = []
        self.signals = 0
        pipeline.on_event = self.events.append
        pipeline.on_tick = self.tick
        pipeline.on_larger_chunk = self.larger.append
        pipeline.on_arrival = self.arrivals.append
        pipeline.on_odd = self.odd.append
        pipeline.on_signal = self.signal
        pipeline.listen(RATE, self.offer, frame)

    def tick(self) -> None:
        self.ticks += 1

    def signal(self) -> None:
        self.signals += 1

    def offer(self, hook: str, block: np.ndarray) -> None:
        assert hook == "audio"
        self.blocks.append(block)


def test_receive_holds_a_chunk_short_of_a_frame_and_hears_it_with_the_next():
    """Today's bot's 10 ms messages: each odd one is held (counted, not heard), asks for the
    bytes that complete the frame, and the pair is heard as one frame at the second one's
    read time; the listener gets exactly the samples sent, the VAD the same events as feed."""
    signal = np.concatenate([silence(0.3, RATE), recording("Front_Left", RATE)])
    signal = signal[: len(signal) // 480 * 480]
    pipeline = InputPipeline(RATE, {RATE}, 20, VoiceActivityDetector(20))
    heard = Heard(pipeline)
    reference = InputPipeline(RATE, {RATE}, 20, VoiceActivityDetector(20))
    expected: list = []
    for n, at in enumerate(range(0, len(signal), 240)):
        chunk = signal[at : at + 240]
        wanted = pipeline.receive(chunk.tobytes(), float(n))
        assert wanted == (960 if n % 2 else 480)  # bytes: the frame's other half, or the next
        assert pipeline.bytes_in == 2 * (at + 240)
        assert pipeline.held_samples == (0 if n % 2 else 240)
        assert pipeline.samples_in == (at + 240 if n % 2 else at)
        if n % 2:
            assert heard.arrivals[-1] == (at + 240, float(n))  # the pair's, read with the second
            reference.feed(signal[at - 240 : at + 240], expected.append)
    assert heard.events == expected and any(isinstance(e, SpeechStarted) for e in expected)
    assert heard.ticks == len(signal) // 480 == len(heard.blocks)
    assert np.array_equal(np.concatenate(heard.blocks), signal)
    sounding = sum(bool(signal[at : at + 240].any()) for at in range(0, len(signal), 240))
    assert heard.larger == [480] and heard.odd == [] and heard.signals == sounding < 2 * heard.ticks


def test_receive_offers_whole_frames_as_blocks_or_frame_by_frame_and_copies_them():
    """100 ms chunks (v2): one block of five frames, or five frames; each a writable copy,
    so a listener may keep or change it; a 30 ms chunk leaves 10 ms for the next."""
    signal = white_noise(0.5, RATE, 3000, seed=4)
    for frame, sizes in ((0, [2400, 2400, 480, 960]), (480, [480] * 13)):
        pipeline = InputPipeline(RATE, {RATE}, 20, VoiceActivityDetector(20))
        heard = Heard(pipeline, frame)
        data = signal[:2400].tobytes()
        assert pipeline.receive(data, 0.0) == 0  # a bot whose chunks complete frames: no wish
        pipeline.receive(signal[2400:4800].tobytes(), 1.0)
        pipeline.receive(signal[4800:5520].tobytes(), 2.0)  # 30 ms: 20 now, 10 wait
        pipeline.receive(signal[5520:6240].tobytes(), 3.0)  # 10 + 30: two frames
        assert [len(b) for b in heard.blocks] == sizes
        assert np.array_equal(np.concatenate(heard.blocks), signal[:6240])
        heard.blocks[0][:] = 0  # a copy: the next chunk's frames are not changed by it
        assert all(b.flags.writeable for b in heard.blocks)
        assert heard.larger == [2400] and pipeline.samples_in == 6240


def test_receive_refuses_an_odd_message_through_its_hook_and_goes_on():
    """An odd byte count is no audio: on_odd gets it, nothing is counted or heard, and the
    next message is heard as if it had not come."""
    pipeline = InputPipeline(RATE, {RATE}, 20, VoiceActivityDetector(20))
    heard = Heard(pipeline)
    assert pipeline.receive(b"\x01\x02\x03", 0.0) == 0
    assert heard.odd == [b"\x01\x02\x03"] and pipeline.bytes_in == 0
    pipeline.receive(silence(0.02, RATE).tobytes(), 1.0)
    assert pipeline.bytes_in == 960 and heard.ticks == 1 and heard.signals == 0


def test_receive_frames_resampled_listeners_at_their_own_rate():
    """A listener at 16 kHz from a 24 kHz bot: the core hands the chunk to its resampling
    take and offers whole 16 kHz frames, as feed returns them (to a unit: soxr's output
    depends by a unit on where its input sits in memory)."""
    signal = recording("Front_Left", RATE)[:24000]
    pipeline = InputPipeline(RATE, {16000}, 20, VoiceActivityDetector(20))
    blocks: list[np.ndarray] = []
    pipeline.listen(16000, lambda hook, block: blocks.append(block), 0)
    reference = InputPipeline(RATE, {16000}, 20, VoiceActivityDetector(20))
    expected = []
    for at in range(0, len(signal), 480):
        pipeline.receive(signal[at : at + 480].tobytes(), 0.0)
        expected += [b for _, b in reference.feed(signal[at : at + 480], lambda e: None) if len(b)]
    assert len(blocks) == len(expected) > 20
    for got, want in zip(blocks, expected, strict=True):  # soxr's SIMD rounds by alignment
        assert len(got) == len(want) and np.abs(got.astype(int) - want).max() <= 2


def test_a_hook_that_raises_stops_the_chunk_and_says_so():
    """The sink's caller closes the socket on an exception (bridge.wire.connection): it must
    reach it, not be swallowed."""
    pipeline = InputPipeline(RATE, {RATE}, 20, VoiceActivityDetector(20))

    def broken(hook: str, block: np.ndarray) -> None:
        raise RuntimeError("listener bug")

    pipeline.listen(RATE, broken, 0)
    with pytest.raises(RuntimeError, match="listener bug"):
        pipeline.receive(silence(0.02, RATE).tobytes(), 0.0)
