"""Framers: good frames survive any split of the stream; bad bytes give error events, never exceptions."""

from hypothesis import given, settings, strategies as st

from lems.wire.framing import ALLOWED, Frame, FrameError, LengthFramer, Overrun, StxFramer

payloads = st.binary(min_size=0, max_size=300).map(lambda b: bytes(x for x in b if x in ALLOWED and x != 0x0D))


def feed_in_pieces(framer, data, cuts):
    events = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for p in points + [len(data)]:
        events += framer.feed(data[start:p])
        start = p
    return events


@given(st.lists(payloads, max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_stx_frames_survive_any_split(frames, cuts):
    wire = b"".join(StxFramer.encode(p) for p in frames)
    events = feed_in_pieces(StxFramer(max_payload=400), wire, cuts)
    assert events == [Frame(p) for p in frames]


@given(st.lists(payloads, max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_length_frames_survive_any_split(frames, cuts):
    wire = b"".join(LengthFramer.encode(p) for p in frames)
    events = feed_in_pieces(LengthFramer(max_payload=400), wire, cuts)
    assert events == [Frame(p) for p in frames]


@settings(max_examples=300)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10_000), max_size=12))
def test_random_bytes_never_raise_and_never_exceed_limits(data, cuts):
    for framer in (StxFramer(max_payload=64, max_garbage=500), LengthFramer(max_payload=64, max_garbage=500)):
        events = feed_in_pieces(framer, data, cuts)
        for e in events:
            assert isinstance(e, (Frame, FrameError, Overrun))
            if isinstance(e, Frame):
                assert len(e.payload) <= 64
                assert all(b in ALLOWED for b in e.payload)
            if isinstance(e, FrameError):
                assert e.code in (".10.", ".31.")
        # the buffer is capped whatever arrives
        assert framer.buffered <= 64 + 5 + max(len(data), 0) and framer.buffered <= 2100


@given(payloads, st.binary(min_size=1, max_size=50).filter(lambda b: 0x02 not in b))
def test_good_frame_after_garbage_still_arrives(good, junk):
    framer = StxFramer(max_payload=400)
    events = framer.feed(junk + StxFramer.encode(good))
    assert events[-1] == Frame(good)
    assert [e.code for e in events[:-1]] == [".10."]


def test_forbidden_byte_is_10_and_next_frame_works():
    framer = StxFramer()
    events = framer.feed(b"\x02HELLO\x00WORLD\x03\x02HBT\x03")
    assert isinstance(events[0], FrameError) and events[0].code == ".10."
    assert "X'00'" in events[0].reason
    assert events[1] == Frame(b"HBT")


def test_eight_bit_byte_is_10():
    events = StxFramer().feed(b"\x02CAF\xc9\x03")
    assert events[0].code == ".10."


def test_oversized_frame_is_31_then_resync():
    framer = StxFramer(max_payload=10)
    events = framer.feed(b"\x02" + b"A" * 11)
    events += framer.feed(b"A" * 5000 + b"\x03\x02OK\x03")
    assert [type(e) for e in events] == [FrameError, Frame]
    assert events[0].code == ".31." and events[1] == Frame(b"OK")
    # the oversized body was never buffered whole
    assert framer.buffered == 0


def test_frame_cut_by_new_stx():
    events = StxFramer().feed(b"\x02HALF\x02WHOLE\x03")
    assert events[0].code == ".10." and events[1] == Frame(b"WHOLE")


def test_crlf_folds_to_lf():
    assert StxFramer().feed(b"\x02A\r\nB\x03") == [Frame(b"A\nB")]


def test_endless_garbage_closes_once():
    framer = StxFramer(max_garbage=1000)
    events = []
    for _ in range(50):
        events += framer.feed(b"x" * 100)
    assert sum(isinstance(e, Overrun) for e in events) == 1
    # one .10. for the run, not one per write
    assert sum(isinstance(e, FrameError) for e in events) == 1
    assert framer.feed(b"\x02OK\x03") == []  # closed framers stay closed


def test_garbage_counter_resets_on_good_frame():
    framer = StxFramer(max_garbage=100)
    for _ in range(10):
        events = framer.feed(b"y" * 60 + b"\x02OK\x03")
        assert not any(isinstance(e, Overrun) for e in events)


def test_length_bad_prefix_and_oversize():
    framer = LengthFramer(max_payload=10)
    assert framer.feed(b"ABCDE")[0].code == ".10."
    events = framer.feed(b"00020" + b"Z" * 8)
    assert events[0].code == ".31."
    assert framer.feed(b"Z" * 12 + b"00002OK") == [Frame(b"OK")]


def test_thousands_of_tiny_writes():
    framer = StxFramer()
    wire = StxFramer.encode(b"REF1              HBT") * 200
    events = []
    for i in range(len(wire)):
        events += framer.feed(wire[i:i + 1])
    assert events == [Frame(b"REF1              HBT")] * 200
