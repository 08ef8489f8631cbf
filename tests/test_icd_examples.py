"""docs/ICD.md's byte-for-byte frame example is what the switch's own code builds (issue 15 item 8).

The four frames (an HBT input and its reply, in `stx` and `length` framing) are
built with lems.wire.framing and lems.wire.headers, dumped the way the ICD shows
them, and compared with the ICD's section; the parse of each dump gives the
frame back, so neither the document nor the code can drift alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from lems.wire.framing import Frame, LengthFramer, StxFramer
from lems.wire.headers import Input, Output, input_bytes, output_bytes

ICD = Path(__file__).resolve().parent.parent / "docs" / "ICD.md"
INPUT = ("A-0001", "", "HBT")
OUTPUT = (1, "A-0001", "R", "2026110315000000", "HBT")


def dump(data: bytes) -> str:
    """16 bytes a line: offset, hex, the bytes as ASCII between bars (`.` for anything not printable)."""
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i:i + 16]
        hexes = " ".join(f"{b:02X}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"    {i:04X}  {hexes:<47}  |{text}|")
    return "\n".join(lines)


def frames() -> list[tuple[str, str, bytes]]:
    inp, out = input_bytes(*INPUT), output_bytes(*OUTPUT)
    return [(name, what, framer.encode(payload))
            for name, framer in (("stx", StxFramer), ("length", LengthFramer))
            for what, payload in (("input", inp), ("output", out))]


def frame_example() -> str:
    return "".join(f"`{name}` {what}, {len(wire)} bytes:\n\n{dump(wire)}\n\n" for name, what, wire in frames())


def _section() -> str:
    text = ICD.read_text()
    m = re.search(r"<!-- frame-example:begin -->\n(.*?)<!-- frame-example:end -->", text, re.S)
    assert m, "docs/ICD.md has no frame example section"
    return m.group(1)


def test_the_icd_example_is_what_the_framers_and_headers_build():
    assert _section() == frame_example()


def test_the_icd_hex_reads_back_as_the_frames():
    section = _section()
    blocks = re.findall(r"`(stx|length)` (input|output), (\d+) bytes:\n\n((?:    [0-9A-F]{4}  .*\n)+)", section)
    assert len(blocks) == 4
    for name, what, size, block in blocks:
        wire = bytes.fromhex(" ".join(line[10:57] for line in block.splitlines()))
        assert len(wire) == int(size)
        framer = StxFramer() if name == "stx" else LengthFramer()
        (event,) = framer.feed(wire)
        assert isinstance(event, Frame)
        if what == "input":
            assert Input.from_wire(event.payload) == Input("A-0001", "", "HBT")
            assert event.payload[:18] == b"A-0001    " + b" " * 8
        else:
            assert Output.from_wire(event.payload) == Output(*OUTPUT)
    assert "`length` input, 26 bytes" in section and "30 30 30 32 31" in section  # the prefix 00021
