"""audio_frames (bridge/wire/_frames.c) against websockets' own frame parser.

The reference reads data frame by frame with websockets' Frame.parse, as the server's
protocol would (masked, the same max_size, no extension): audio_frames must return the
payloads of the final binary frames it reads, up to the first frame that is anything
else, that it refuses or that the data cuts, and exactly the bytes those frames take.
"""

import random
import sys

import pytest
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from bridge.wire._frames import audio_frames
from tests.wire.test_connection import close_payload, frame

MAX_SIZE = 70000
LENGTHS = [0, 1, 125, 126, 127, 65535, 65536]  # the 7-, 16- and 64-bit length forms at their edges
MASKS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x37\xfa\x21\x3d"] + [
    random.Random(seed).randbytes(4) for seed in range(3)
]


def reference(data: bytes, max_size: int) -> tuple[list[bytes], int]:
    """The final binary frames websockets' parser reads at the front of data, before the
    first other, refused or cut frame: their payloads, and the bytes they take."""
    reader = StreamReader()
    reader.feed_data(data)
    payloads, taken = [], 0
    while True:
        parser = Frame.parse(reader.read_exact, mask=True, max_size=max_size, extensions=[])
        try:
            next(parser)
            return payloads, taken  # it waits for more: the data cuts this frame
        except StopIteration as parsed:
            got: Frame = parsed.value
        except (ProtocolError, PayloadTooBig):
            return payloads, taken
        if got.opcode is not Opcode.BINARY or not got.fin or got.rsv1 or got.rsv2 or got.rsv3:
            return payloads, taken
        payloads.append(bytes(got.data))
        taken = len(data) - len(reader.buffer)


def check(data: bytes, max_size: int = MAX_SIZE) -> tuple[list[bytes], int]:
    """audio_frames on data, asserted equal to the reference; returns its result."""
    payloads, taken = audio_frames(data, max_size)
    assert all(type(p) is bytes for p in payloads)
    expected = reference(data, max_size)
    assert ([len(p) for p in payloads], taken) == ([len(p) for p in expected[0]], expected[1])
    assert payloads == expected[0]
    return payloads, taken


def payload_of(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 7919 + seed).randbytes(n)


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: m.hex())
@pytest.mark.parametrize("n", LENGTHS)
def test_a_frame_of_each_length_form_is_unmasked_whole(n, mask):
    audio = payload_of(n)
    data = frame(2, audio, mask=mask)
    assert check(data) == ([audio], len(data))


@pytest.mark.parametrize("form", [0, 2, 8])
def test_a_non_minimal_length_is_read_as_websockets_reads_it(form):
    audio = payload_of(100)
    data = frame(2, audio, length_bytes=form) + frame(2, b"\x01\x00", length_bytes=8)
    assert check(data) == ([audio, b"\x01\x00"], len(data))


AUDIO_RUN = [payload_of(n, seed) for seed, n in enumerate([960, 0, 1, 125, 126, 65536, 480])]
STOPS = {
    "text": frame(1, b"speakers"),
    "ping": frame(9, b"are you there"),
    "pong": frame(10, b""),
    "close": frame(8, close_payload(1000, b"bye")),
    "continuation": frame(0, b"\x01\x00"),
    "fragment (FIN=0)": frame(2, b"\x01\x00", fin=False),
    "rsv1": frame(2, b"\x01\x00", rsv=4),
    "rsv2": frame(2, b"\x01\x00", rsv=2),
    "rsv3": frame(2, b"\x01\x00", rsv=1),
    "reserved opcode": frame(3, b"\x01\x00"),
    "unmasked": frame(2, b"\x01\x00", masked=False),
    "oversized": frame(2, bytes(MAX_SIZE + 1)),
    "64-bit length, top bit set": bytes((0x82, 0xFF)) + (1 << 63 | 10).to_bytes(8, "big"),
    "64-bit length of 2**64 - 1": bytes((0x82, 0xFF)) + b"\xff" * 8,
}


@pytest.mark.parametrize("stop", STOPS.values(), ids=STOPS.keys())
def test_frames_are_taken_up_to_the_first_other_frame_exactly(stop):
    frames = b"".join(frame(2, p, mask=MASKS[i % 6]) for i, p in enumerate(AUDIO_RUN))
    after = frame(2, b"\x02\x00")  # a good frame after the stop: never taken
    assert check(frames + stop + after) == (AUDIO_RUN, len(frames))


def test_the_top_bit_of_a_64_bit_length_stops_it_even_without_a_size_limit():
    data = frame(2, b"\x01\x00") + bytes((0x82, 0xFF)) + (1 << 63).to_bytes(8, "big") + bytes(4)
    assert check(data, sys.maxsize) == ([b"\x01\x00"], len(frame(2, b"\x01\x00")))


def test_a_payload_at_the_size_limit_is_taken_one_byte_over_is_not():
    at, over = frame(2, bytes(1000)), frame(2, bytes(1001))
    assert check(at + over, 1000) == ([bytes(1000)], len(at))
    assert check(frame(2, b"") + frame(2, b"\x00"), 0) == ([b""], 6)


CUT_SEQUENCE = [
    frame(2, payload_of(20), mask=MASKS[2]),
    frame(2, b"", mask=MASKS[3]),
    frame(2, payload_of(300), mask=MASKS[4]),  # 16-bit length
    frame(2, payload_of(13), length_bytes=8, mask=MASKS[5]),  # 64-bit length
    frame(1, b"speakers"),
]


def test_frames_cut_at_every_byte_stop_before_the_cut_frame():
    data = b"".join(CUT_SEQUENCE)
    ends = [sum(len(f) for f in CUT_SEQUENCE[:i]) for i in range(len(CUT_SEQUENCE))]
    for cut in range(len(data) + 1):
        _, taken = check(data[:cut])
        assert taken == max(end for end in ends if end <= cut)  # the whole frames before the cut


def test_a_64_bit_length_frame_cut_in_its_header_or_payload_is_left_whole():
    audio = payload_of(65536)
    big = frame(2, audio, mask=MASKS[5])
    first = frame(2, b"\x01\x00")
    for cut in [*range(15), 16, 1000, 65536, len(big) - 1]:  # header bytes 0-13, mask, payload
        assert check(first + big[:cut]) == ([b"\x01\x00"], len(first))
    assert check(first + big) == ([b"\x01\x00", audio], len(first) + len(big))


def test_random_frame_sequences_match_websockets():
    rng = random.Random(21)
    for _ in range(300):
        frames = []
        for _ in range(rng.randint(1, 6)):
            good = rng.random() < 0.8
            frames.append(
                frame(
                    2 if good else rng.choice([0, 1, 2, 3, 8, 9, 10, 11]),
                    rng.randbytes(rng.choice([0, 1, 7, 8, 9, 125, 126, 127, 960, 4801])),
                    fin=good or rng.random() < 0.5,
                    rsv=0 if good else rng.choice([0, 1, 2, 4]),
                    masked=good or rng.random() < 0.7,
                    mask=rng.randbytes(4),
                )
            )
        data = b"".join(frames)
        check(data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data, 4800)


def test_any_contiguous_buffer_is_read_and_bad_arguments_are_refused():
    data = frame(2, b"\x01\x02\x03")
    assert audio_frames(bytearray(data), 10) == ([b"\x01\x02\x03"], len(data))
    assert audio_frames(memoryview(data), 10) == ([b"\x01\x02\x03"], len(data))
    with pytest.raises(ValueError, match="max_size"):
        audio_frames(data, -1)
    with pytest.raises(TypeError):
        audio_frames("text", 10)
    with pytest.raises(TypeError):
        audio_frames(data)
    with pytest.raises(OverflowError):
        audio_frames(data, 1 << 64)
