"""Input and output headers: the construct grammar is the oracle of the fast paths.

* parse(build(x)) == x for every valid value, on the grammar;
* each fast path (``Input.from_wire``, ``Output.from_wire``, ``input_bytes``,
  ``output_bytes``) gives exactly what the grammar gives for every valid
  header, and for anything else raises the grammar's own ``HeaderError``.
"""

import pytest
from hypothesis import example, given, strategies as st

from lems.wire import headers as h
from lems.wire.headers import CLASSES, FIELD_CHARS, HeaderError, Input, Output, input_bytes, output_bytes

FIELD_ALPHABET = [chr(b) for b in FIELD_CHARS]  # printable ASCII, LF, CR


def field(n: int) -> st.SearchStrategy[str]:
    """A REF or OPR value: trailing spaces are padding, so a value has none."""
    return st.text(st.sampled_from(FIELD_ALPHABET), max_size=n).map(lambda s: s.rstrip(" "))


text = st.text(st.characters(max_codepoint=0x7F), max_size=120)
ts = st.text(st.sampled_from("0123456789"), min_size=16, max_size=16)
osn = st.integers(1, 99999)
inputs = st.builds(Input, field(10), field(8), text)
outputs = st.builds(Output, osn, field(10), st.sampled_from(CLASSES), ts, text)


def same(fast, oracle, *args):
    """The fast path's answer is the oracle's: the same value, or the same HeaderError."""
    try:
        expected = oracle(*args)
    except HeaderError as exc:
        with pytest.raises(HeaderError) as got:
            fast(*args)
        assert str(got.value) == str(exc)
        return None
    assert fast(*args) == expected
    return expected


# -- the grammar round-trips -------------------------------------------------------------------


@given(inputs)
def test_input_grammar_round_trip(inp):
    wire = h.build_input(inp.ref, inp.opr, inp.text)
    assert len(wire) == h.INPUT_HEADER_LEN + len(inp.text)
    assert h.parse_input(wire) == inp


@given(outputs)
def test_output_grammar_round_trip(out):
    wire = h.build_output(out.osn, out.ref, out.cls, out.ts, out.text)
    assert len(wire) == h.OUTPUT_HEADER_LEN + len(out.text) and wire[:5].isdigit()
    assert h.parse_output(wire) == out


# -- the fast paths agree with it on every valid value ----------------------------------------


@given(inputs)
def test_fast_input_paths_are_the_grammar(inp):
    wire = same(input_bytes, h.build_input, inp.ref, inp.opr, inp.text)
    assert inp.to_wire() == wire
    assert same(Input.from_wire, h.parse_input, wire) == inp


@given(outputs)
def test_fast_output_paths_are_the_grammar(out):
    wire = same(output_bytes, h.build_output, out.osn, out.ref, out.cls, out.ts, out.text)
    assert out.to_wire() == wire
    assert same(Output.from_wire, h.parse_output, wire) == out


# Valid headers as bytes, with leading and inner spaces and LF/CR in REF and OPR.
header_byte = st.sampled_from(list(FIELD_CHARS))
input_wire = st.builds(lambda head, body: bytes(head) + body,
                       st.lists(header_byte, min_size=18, max_size=18), st.binary(max_size=60).map(
                           lambda b: bytes(x & 0x7F for x in b)))
output_wire = st.builds(lambda n, ref, cls, stamp, body: b"%05d" % n + bytes(ref) + cls.encode() + stamp.encode() + body,
                        osn, st.lists(header_byte, min_size=10, max_size=10), st.sampled_from(CLASSES), ts,
                        st.binary(max_size=60).map(lambda b: bytes(x & 0x7F for x in b)))


@given(input_wire)
def test_every_valid_input_header_reads_the_same_both_ways(wire):
    assert same(Input.from_wire, h.parse_input, wire) is not None


@given(output_wire)
def test_every_valid_output_header_reads_the_same_both_ways(wire):
    assert same(Output.from_wire, h.parse_output, wire) is not None


# -- and on everything else -------------------------------------------------------------------


def mutated(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A valid payload with one byte replaced or the payload cut short: near misses."""
    def change(wire: bytes, where: int, byte: int, cut: bool) -> bytes:
        i = where % max(1, len(wire))
        return wire[:i] if cut else wire[:i] + bytes([byte]) + wire[i + 1:]
    return st.builds(change, valid, st.integers(0, 200), st.integers(0, 255), st.booleans())


@given(st.one_of(st.binary(max_size=50), mutated(input_wire)))
@example(b"")
@example(b"SHORT")
@example(b"REF\x01" + b" " * 14 + b"HBT")
@example(b" " * 18 + b"\xff")
def test_input_fast_path_refuses_what_the_grammar_refuses(wire):
    same(Input.from_wire, h.parse_input, wire)


@given(st.one_of(st.binary(max_size=60), mutated(output_wire)))
@example(b"00000" + b" " * 10 + b"R" + b"0" * 16)
@example(b"0000A" + b" " * 10 + b"R" + b"0" * 16)
@example(b"00001" + b" " * 10 + b"X" + b"0" * 16)
@example(b"00001" + b" " * 10 + b"R" + b"0" * 15 + b"Z")
def test_output_fast_path_refuses_what_the_grammar_refuses(wire):
    same(Output.from_wire, h.parse_output, wire)


any_text = st.text(max_size=14)


@given(any_text, any_text, any_text)
@example("X" * 11, "", "HBT")
@example("", "OPERATOR9", "HBT")
@example("A\x01", "", "HBT")
@example("", "", "CAF\u00c9")
def test_input_builder_refuses_what_the_grammar_refuses(ref, opr, body):
    same(input_bytes, h.build_input, ref, opr, body)


@given(st.one_of(st.integers(-5, 100005), st.sampled_from([True, 1.0, "1"])), any_text,
       st.one_of(st.sampled_from(CLASSES), any_text), st.one_of(ts, any_text), any_text)
@example(0, "", "R", "2026010112000000", "")
@example(100000, "", "R", "2026010112000000", "")
@example(1, "X" * 11, "R", "2026010112000000", "")
@example(1, "", "", "20260101120000000", "")
@example(1, "", "R", "2026010112000000", "\u00e9")
def test_output_builder_refuses_what_the_grammar_refuses(number, ref, cls, stamp, body):
    same(output_bytes, h.build_output, number, ref, cls, stamp, body)


# -- the errors say what is wrong ---------------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: Input.from_wire(b"SHORT"), "input payload of 5 bytes is shorter than the 18-byte header"),
    (lambda: Input.from_wire(b"REF\x01" + b" " * 14), "REF b'REF\\x01      ' holds a character"),
    (lambda: Output.from_wire(b"ABCDE" + b" " * 27), "OSN b'ABCDE' is not 5 digits 00001-99999"),
    (lambda: Output.from_wire(b"00001" + b" " * 10 + b"X" + b"0" * 16), "CLS b'X' is not one of R U S E"),
    (lambda: output_bytes(1, "X" * 11, "R", "2026010112000000", ""), "REF 'XXXXXXXXXXX' is longer than 10"),
    (lambda: output_bytes(1, "", "R", "2026", ""), "TS '2026' is not 16 digits"),
    (lambda: input_bytes("", "OPERATOR9", ""), "OPR 'OPERATOR9' is longer than 8"),
])
def test_errors_name_the_field(call, message):
    with pytest.raises(HeaderError, match="^" + __import__("re").escape(message)):
        call()


def test_blank_header_fields():
    assert Input.from_wire(b" " * 18 + b"HBT") == Input("", "", "HBT")


def test_header_only_grammars_stay_declared():
    assert h.InputHeader.sizeof() == h.INPUT_HEADER_LEN and h.OutputHeader.sizeof() == h.OUTPUT_HEADER_LEN
