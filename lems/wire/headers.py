"""The fixed-format headers of PROTOCOL.md section 3: the one place they are built and parsed.

Input payload  = 18-byte input header (REF 10, OPR 8) + message text.
Output payload = 32-byte output header (OSN 5, REF 10, CLS 1, TS 16) + text.

Two ways through each, which must agree:

* the grammar, declared with construct (``InputPayload``, ``OutputPayload``,
  reached through ``parse_input``, ``build_input``, ``parse_output`` and
  ``build_output``): the definition, and the oracle of the property tests
  (tests/test_headers.py: parse(build(x)) == x, and every fast path gives what
  the grammar gives, for every valid header);
* the fast paths, plain slicing and ``%`` formatting with a few cheap checks:
  ``Input.from_wire`` and ``output_bytes`` run on every frame the switch
  handles, ``Output.from_wire`` and ``input_bytes`` on every frame a client,
  the replay or the load generator handles.

What is valid, on both ways: REF and OPR hold the characters a frame may carry
(printable ASCII, LF, CR; the framing has already refused anything else) and
are space padded on the right (trailing spaces are padding, not data); OSN is
five digits, ``00001``-``99999``; CLS one of ``R U S E``; TS sixteen digits; the
text is ASCII.  Anything else is a ``HeaderError`` that names the field: a fast
path that refuses a value asks the grammar for the reason, so both give the
same message.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

import attrs
import construct as c

from lems.wire.framing import ALLOWED

INPUT_HEADER_LEN = 18
OUTPUT_HEADER_LEN = 32
REF_LEN, OPR_LEN, OSN_LEN, TS_LEN = 10, 8, 5, 16
CLASSES = ("R", "U", "S", "E")
# Characters of the REF and OPR fields: whatever a frame may carry.
FIELD_CHARS = ALLOWED
_CLASS_BYTES = frozenset(cls.encode("ascii") for cls in CLASSES)


class HeaderError(ValueError):
    """A payload or a value that is not a header of PROTOCOL.md section 3; says which field and why."""


# -- the grammar -------------------------------------------------------------------------------


class Field(c.Adapter):
    """A fixed-width field of the header, with its PROTOCOL.md name for the error messages."""

    def __init__(self, length: int, name: str) -> None:
        super().__init__(c.Bytes(length))
        self.length, self.field = length, name


class SpacePadded(Field):
    """A fixed-width field of frame characters, space padded on the right; trailing spaces are not data."""

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        if obj.translate(None, FIELD_CHARS):
            raise HeaderError(f"{self.field} {obj!r} holds a character a frame may not carry")
        return obj.decode("ascii").rstrip(" ")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        raw = _ascii(obj, self.field)
        if len(raw) > self.length:
            raise HeaderError(f"{self.field} {obj!r} is longer than {self.length} characters")
        if raw.translate(None, FIELD_CHARS):
            raise HeaderError(f"{self.field} {obj!r} holds a character a frame may not carry")
        return raw.ljust(self.length, b" ")


class Digits(Field):
    """A fixed-width zero-padded decimal number in ``low``..``high`` (the OSN)."""

    def __init__(self, length: int, name: str, low: int, high: int) -> None:
        super().__init__(length, name)
        self.low, self.high = low, high

    def _decode(self, obj: bytes, context: Any, path: Any) -> int:
        if not obj.isdigit() or not self.low <= int(obj) <= self.high:
            raise HeaderError(f"{self.field} {obj!r} is not {self.length} digits "
                              f"{self.low:0{self.length}d}-{self.high:0{self.length}d}")
        return int(obj)

    def _encode(self, obj: int, context: Any, path: Any) -> bytes:
        if type(obj) is not int or not self.low <= obj <= self.high:
            raise HeaderError(f"{self.field} {obj!r} is not a number {self.low}-{self.high}")
        return b"%0*d" % (self.length, obj)


class DigitString(Field):
    """A fixed-width string of ASCII digits (the TS, CCYYMMDDhhmmssff)."""

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        if not obj.isdigit():
            raise HeaderError(f"{self.field} {obj!r} is not {self.length} digits")
        return obj.decode("ascii")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        raw = _ascii(obj, self.field)
        if len(raw) != self.length or not raw.isdigit():
            raise HeaderError(f"{self.field} {obj!r} is not {self.length} digits")
        return raw


class ClassCode(c.Adapter):
    """The one-letter output class."""

    def __init__(self) -> None:
        super().__init__(c.Bytes(1))

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        if obj not in _CLASS_BYTES:
            raise HeaderError(f"CLS {obj!r} is not one of {' '.join(CLASSES)}")
        return obj.decode("ascii")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        if obj not in CLASSES:
            raise HeaderError(f"CLS {obj!r} is not one of {' '.join(CLASSES)}")
        return obj.encode("ascii")


class AsciiText(c.Adapter):
    """The message text: the rest of the payload, ASCII."""

    def __init__(self) -> None:
        super().__init__(c.GreedyBytes)

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        try:
            return obj.decode("ascii")
        except UnicodeDecodeError as exc:
            raise HeaderError(f"text is not ASCII (byte {obj[exc.start]:#04x} at {exc.start})") from None

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        return _ascii(obj, "text")


def _ascii(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise HeaderError(f"{field} {value!r} is not a string")
    try:
        return value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise HeaderError(f"{field} {value!r} is not ASCII (at {exc.start})") from None


_INPUT_FIELDS = (
    "ref" / SpacePadded(REF_LEN, "REF"),
    "opr" / SpacePadded(OPR_LEN, "OPR"),
)
_OUTPUT_FIELDS = (
    "osn" / Digits(OSN_LEN, "OSN", 1, 99999),
    "ref" / SpacePadded(REF_LEN, "REF"),
    "cls" / ClassCode(),
    "ts" / DigitString(TS_LEN, "TS"),
)
InputHeader = c.Struct(*_INPUT_FIELDS)
InputPayload = c.Struct(*_INPUT_FIELDS, "text" / AsciiText())
OutputHeader = c.Struct(*_OUTPUT_FIELDS)
OutputPayload = c.Struct(*_OUTPUT_FIELDS, "text" / AsciiText())


def _grammar(struct: c.Struct, what: str, header_len: int, payload: bytes) -> Any:
    try:
        return struct.parse(payload)
    except c.StreamError:
        raise HeaderError(f"{what} payload of {len(payload)} bytes is shorter than the "
                          f"{header_len}-byte header") from None


def parse_input(payload: bytes) -> "Input":
    """The grammar's reading of an input payload (the oracle of ``Input.from_wire``)."""
    found = _grammar(InputPayload, "input", INPUT_HEADER_LEN, payload)
    return Input(found.ref, found.opr, found.text)


def build_input(ref: str, opr: str, text: str) -> bytes:
    """The grammar's input payload (the oracle of ``input_bytes``)."""
    return InputPayload.build({"ref": ref, "opr": opr, "text": text})


def parse_output(payload: bytes) -> "Output":
    """The grammar's reading of an output payload (the oracle of ``Output.from_wire``)."""
    found = _grammar(OutputPayload, "output", OUTPUT_HEADER_LEN, payload)
    return Output(found.osn, found.ref, found.cls, found.ts, found.text)


def build_output(osn: int, ref: str, cls: str, ts: str, text: str) -> bytes:
    """The grammar's output payload (the oracle of ``output_bytes``)."""
    return OutputPayload.build({"osn": osn, "ref": ref, "cls": cls, "ts": ts, "text": text})


def _refuse(oracle: Callable[..., Any], *args: Any) -> NoReturn:
    """A fast path refused ``args``: raise the grammar's reason."""
    oracle(*args)
    # The grammar took what the fast path refused: a bug the property tests exist to find.
    raise HeaderError(f"{oracle.__name__}: the fast path refused {args!r}, which the grammar accepts")


# -- the fast paths -------------------------------------------------------------------------------


@attrs.frozen
class Input:
    """One input payload split into its header fields and the message text."""

    ref: str
    opr: str
    text: str

    @classmethod
    def from_wire(cls, payload: bytes) -> "Input":
        """Hot path (every input frame): ``parse_input`` without construct."""
        head = payload[:INPUT_HEADER_LEN]
        if len(head) == INPUT_HEADER_LEN and not head.translate(None, FIELD_CHARS):
            try:
                text = payload[INPUT_HEADER_LEN:].decode("ascii")
            except UnicodeDecodeError:
                pass
            else:
                return cls(head[:REF_LEN].decode("ascii").rstrip(" "),
                           head[REF_LEN:].decode("ascii").rstrip(" "), text)
        _refuse(parse_input, payload)

    def to_wire(self) -> bytes:
        return input_bytes(self.ref, self.opr, self.text)


@attrs.frozen
class Output:
    """One output payload: the header fields and the text."""

    osn: int
    ref: str
    cls: str
    ts: str
    text: str

    @classmethod
    def from_wire(cls, payload: bytes) -> "Output":
        """``parse_output`` without construct (clients, replay and the load generator read every frame)."""
        head = payload[:OUTPUT_HEADER_LEN]
        if (len(head) == OUTPUT_HEADER_LEN and head[:5].isdigit() and head[:5] != b"00000"
                and head[15:16] in _CLASS_BYTES and head[16:].isdigit() and not head[5:15].translate(None, FIELD_CHARS)):
            try:
                text = payload[OUTPUT_HEADER_LEN:].decode("ascii")
            except UnicodeDecodeError:
                pass
            else:
                return cls(int(head[:5]), head[5:15].decode("ascii").rstrip(" "), chr(head[15]),
                           head[16:].decode("ascii"), text)
        _refuse(parse_output, payload)

    def to_wire(self) -> bytes:
        return output_bytes(self.osn, self.ref, self.cls, self.ts, self.text)


def input_bytes(ref: str, opr: str, text: str) -> bytes:
    """``build_input`` without construct."""
    try:
        payload = b"%-10s%-8s%s" % (ref.encode("ascii"), opr.encode("ascii"), text.encode("ascii"))
    except (UnicodeEncodeError, AttributeError):
        _refuse(build_input, ref, opr, text)
    # An overlong field makes the payload longer: each field is padded to at least its width.
    if len(payload) != INPUT_HEADER_LEN + len(text) or payload[:INPUT_HEADER_LEN].translate(None, FIELD_CHARS):
        _refuse(build_input, ref, opr, text)
    return payload


def output_bytes(osn: int, ref: str, cls: str, ts: str, text: str) -> bytes:
    """Hot path (every output frame): ``build_output`` without construct."""
    try:
        payload = b"%05d%-10s%s%s%s" % (osn, ref.encode("ascii"), cls.encode("ascii"), ts.encode("ascii"),
                                         text.encode("ascii"))
    except (UnicodeEncodeError, AttributeError, TypeError):
        _refuse(build_output, osn, ref, cls, ts, text)
    if (type(osn) is not int or not 0 < osn < 100000 or cls not in CLASSES or not ts.isdigit()
            or len(payload) != OUTPUT_HEADER_LEN + len(text) or payload[5:15].translate(None, FIELD_CHARS)):
        _refuse(build_output, osn, ref, cls, ts, text)
    return payload
