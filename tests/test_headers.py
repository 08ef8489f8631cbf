"""Input and output headers: the construct grammar round-trips, the fast builder agrees with it."""

import construct as c
import pytest
from hypothesis import given, strategies as st

from lems.wire.headers import CLASSES, Input, InputHeader, Output, output_bytes

field = lambda n: st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=n).map(str.rstrip)
text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
ts = st.text(st.sampled_from("0123456789"), min_size=16, max_size=16)


@given(field(10), field(8), text)
def test_input_round_trip(ref, opr, body):
    inp = Input(ref, opr, body)
    assert Input.from_wire(inp.to_wire()) == inp
    assert len(inp.to_wire()) == 18 + len(body)


@given(st.integers(1, 99999), field(10), st.sampled_from(CLASSES), ts, text)
def test_output_round_trip_and_fast_builder(osn, ref, cls, stamp, body):
    out = Output(osn, ref, cls, stamp, body)
    wire = out.to_wire()
    assert Output.from_wire(wire) == out
    assert output_bytes(osn, ref, cls, stamp, body) == wire
    assert wire[:5].isdigit() and len(wire) == 32 + len(body)


def test_ref_too_long_is_refused_by_grammar():
    with pytest.raises(c.ConstructError):
        InputHeader.build({"ref": "X" * 11, "opr": ""})


def test_blank_header_fields():
    assert Input.from_wire(b" " * 18 + b"HBT") == Input("", "", "HBT")
