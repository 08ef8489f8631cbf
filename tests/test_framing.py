"""Framers: good frames survive any split of the stream; bad bytes give error events, never exceptions."""

from hypothesis import given, settings, strategies as st

from lems.wire import framing, headers
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
    # An oversized length is answered once the REF (the payload's first 10 bytes) is in.
    assert framer.feed(b"00020" + b"Z" * 8) == []
    events = framer.feed(b"ZZ")
    assert events[0].code == ".31." and events[0].ref == "ZZZZZZZZZZ"
    assert framer.feed(b"Z" * 10 + b"00002OK") == [Frame(b"OK")]


def test_thousands_of_tiny_writes():
    framer = StxFramer()
    wire = StxFramer.encode(b"REF1              HBT") * 200
    events = []
    for i in range(len(wire)):
        events += framer.feed(wire[i:i + 1])
    assert events == [Frame(b"REF1              HBT")] * 200


# -- the REF of an input refused by the framing (PROTOCOL.md 3) ------------------------------------

PRINTABLE = bytes(range(0x20, 0x7F))
refs = st.binary(min_size=10, max_size=10).map(lambda b: bytes(PRINTABLE[x % len(PRINTABLE)] for x in b))
# Payload bytes that do not end an STX frame (a forbidden byte is fine inside an oversized one).
no_stx_etx = st.binary(max_size=400).map(lambda b: b.replace(b"\x02", b"").replace(b"\x03", b""))
good_bytes = st.binary(max_size=60).map(lambda b: bytes(x for x in b if x in ALLOWED))
bad_bytes = st.sampled_from([x for x in range(256) if x not in ALLOWED and x not in (0x02, 0x03)])
framers = st.sampled_from([StxFramer, LengthFramer])
cut_points = st.lists(st.integers(0, 10_000), max_size=12)


def test_the_framers_ref_is_the_input_headers():
    assert framing.REF_BYTES == headers.REF_LEN


def _first_error(events):
    errors = [e for e in events if isinstance(e, FrameError)]
    assert errors, events
    return errors[0]


@settings(max_examples=300)
@given(framers, refs, no_stx_etx, st.integers(10, 200), cut_points)
def test_an_oversized_frame_carries_its_ref(framer_cls, ref, rest, max_payload, cuts):
    payload = ref + rest
    payload += b"Q" * max(0, max_payload + 1 - len(payload))  # oversized, however short rest was
    wire = framer_cls.encode(payload) + framer_cls.encode(b"NEXT")
    events = feed_in_pieces(framer_cls(max_payload=max_payload, max_garbage=1 << 20), wire, cuts)
    error = _first_error(events)
    assert error.code == ".31."
    assert error.ref == ref.decode("ascii").rstrip(" ")
    assert error.original[:10] == ref and len(error.original) <= 100
    assert events[-1] == Frame(b"NEXT")  # and the stream is in step again


@settings(max_examples=300)
@given(framers, refs, good_bytes, bad_bytes, good_bytes, cut_points)
def test_a_bad_byte_after_the_ref_carries_the_ref(framer_cls, ref, before, bad, after, cuts):
    payload = ref + before + bytes([bad]) + after
    wire = framer_cls.encode(payload) + framer_cls.encode(b"NEXT")
    events = feed_in_pieces(framer_cls(max_payload=400), wire, cuts)
    error = _first_error(events)
    assert error.code == ".10." and f"X'{bad:02X}' AT POSITION {11 + len(before)}" in error.reason
    assert error.ref == ref.decode("ascii").rstrip(" ")
    assert events[-1] == Frame(b"NEXT")


@given(framers, refs, st.integers(0, 9), st.sampled_from([0x00, 0x0A, 0x0D, 0x1B, 0x7F, 0xC9]), good_bytes)
def test_a_ref_holding_a_byte_that_cannot_be_echoed_is_blank(framer_cls, ref, at, bad, after):
    payload = ref[:at] + bytes([bad]) + ref[at + 1:] + after + (b"" if bad not in (0x0A, 0x0D) else b"\x00")
    events = framer_cls(max_payload=400).feed(framer_cls.encode(payload))
    assert _first_error(events).ref == ""


def test_no_ref_when_fewer_than_10_bytes_were_read():
    assert _first_error(StxFramer().feed(b"\x02AB\x00\x03")).ref == ""
    assert _first_error(StxFramer().feed(b"\x02ABCDEFGHI\x02")).ref == ""
    assert _first_error(StxFramer().feed(b"\x02ABCDEFGHIJ\x02")).ref == "ABCDEFGHIJ"
    # bytes outside a frame and a bad length prefix are not an input's first bytes
    assert _first_error(StxFramer().feed(b"ABCDEFGHIJKL")).ref == ""
    assert _first_error(LengthFramer().feed(b"X0020ABCDEFGHIJKL")).ref == ""


def test_ref_of_keeps_printable_refs_and_drops_the_padding():
    assert framing.ref_of(b"REF-1     OPR") == "REF-1"
    assert framing.ref_of(b"          ") == ""
    assert framing.ref_of(b"REF\n1     ") == ""
    assert framing.ref_of(b"SHORT") == ""
