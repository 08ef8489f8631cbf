"""The fixed-format headers of PROTOCOL.md section 3, declared with construct.

Input payload  = 18-byte input header (REF 10, OPR 8) + message text.
Output payload = 32-byte output header (OSN 5, REF 10, CLS 1, TS 16) + text.

Fields are space padded ASCII; ``SpacePadded`` is the small adapter construct
lacks (its PaddedString pads with NULs).  The structs are compiled once; the
grammar itself is the oracle the property tests check against.
"""

from __future__ import annotations

import attrs
import construct as c

INPUT_HEADER_LEN = 18
OUTPUT_HEADER_LEN = 32
CLASSES = ("R", "U", "S", "E")


class SpacePadded(c.Adapter):
    """A fixed-width ASCII field, space padded on the right; trailing spaces are not data."""

    def __init__(self, length: int) -> None:
        super().__init__(c.Bytes(length))
        self.length = length

    def _decode(self, obj: bytes, context, path) -> str:
        return obj.decode("ascii").rstrip(" ")

    def _encode(self, obj: str, context, path) -> bytes:
        raw = obj.encode("ascii")
        if len(raw) > self.length:
            raise c.PaddingError(f"{obj!r} is longer than {self.length}", path=path)
        return raw.ljust(self.length, b" ")

    def _emitdecompiled(self, code):
        return f"{code}.decode('ascii').rstrip(' ')"


class Digits(c.Adapter):
    """A fixed-width zero-padded decimal number (the OSN)."""

    def __init__(self, length: int) -> None:
        super().__init__(c.Bytes(length))
        self.length = length

    def _decode(self, obj: bytes, context, path) -> int:
        if not obj.isdigit():
            raise c.ValidationError(f"{obj!r} is not {self.length} digits", path=path)
        return int(obj)

    def _encode(self, obj: int, context, path) -> bytes:
        if not 0 <= obj < 10 ** self.length:
            raise c.ValidationError(f"{obj} does not fit {self.length} digits", path=path)
        return b"%0*d" % (self.length, obj)


InputHeader = c.Struct(
    "ref" / SpacePadded(10),
    "opr" / SpacePadded(8),
)

OutputHeader = c.Struct(
    "osn" / Digits(5),
    "ref" / SpacePadded(10),
    "cls" / c.Bytes(1),
    "ts" / c.Bytes(16),
)


# Parsing runs on every input frame: compile it once.
_INPUT_COMPILED = InputHeader.compile()


@attrs.frozen
class Input:
    """One input payload split into its header fields and the message text."""

    ref: str
    opr: str
    text: str

    @classmethod
    def from_wire(cls, payload: bytes) -> "Input":
        """Callers have checked the length and character set (framing) first."""
        head = _INPUT_COMPILED.parse(payload[:INPUT_HEADER_LEN])
        return cls(head.ref, head.opr, payload[INPUT_HEADER_LEN:].decode("ascii"))

    def to_wire(self) -> bytes:
        return InputHeader.build({"ref": self.ref, "opr": self.opr}) + self.text.encode("ascii")


@attrs.frozen
class Output:
    osn: int
    ref: str
    cls: str
    ts: str
    text: str

    @classmethod
    def from_wire(cls, payload: bytes) -> "Output":
        head = OutputHeader.parse(payload[:OUTPUT_HEADER_LEN])
        return cls(head.osn, head.ref, head.cls.decode("ascii"), head.ts.decode("ascii"),
                   payload[OUTPUT_HEADER_LEN:].decode("ascii"))

    def to_wire(self) -> bytes:
        return OutputHeader.build({"osn": self.osn, "ref": self.ref, "cls": self.cls.encode("ascii"),
                                   "ts": self.ts.encode("ascii")}) + self.text.encode("ascii")


def output_bytes(osn: int, ref: str, cls: str, ts: str, text: str) -> bytes:
    """Hot path: the output payload without going through construct.

    Equal to ``Output(...).to_wire()`` for every valid value (a property test
    checks it); REF has already passed the input header's grammar.
    """
    return b"%05d%-10s%s%s%s" % (osn, ref.encode("ascii"), cls.encode("ascii"), ts.encode("ascii"),
                                  text.encode("ascii"))
