"""Framers: bytes off the wire in, frames and framing errors out (PROTOCOL.md 2).

Sans-IO, in the manner of twisted.protocols.basic: one receive buffer, limits as
attributes, and ``feed`` returns events instead of calling back.  Bad framing is
an event, never an exception: the connection answers it and carries on.

* ``Frame(payload)``: a good payload, CR LF already folded to LF.
* ``FrameError(code, reason, original, ref)``: ``.10.`` (forbidden byte, bytes
  outside a frame, a frame cut off by a new STX) or ``.31.`` (over ``max_payload``).
  ``ref`` is the REF the error frame carries (PROTOCOL.md 3): the offending
  payload's first 10 bytes once they have been read, when all ten are printable
  (``ref_of``), else blank.  An oversized frame is discarded but its first bytes
  are kept (at most 100, for the echo and the REF); the ``length`` framer answers
  an oversized length only once the first 10 bytes of its payload have arrived.
* ``Overrun(reason)``: more than ``max_garbage`` bad bytes in a row; close.
"""

from __future__ import annotations

from typing import Union

import attrs

STX, ETX = 0x02, 0x03
# Printable ASCII plus LF and CR: anything else in a payload is a .10.
ALLOWED = bytes([0x0A, 0x0D, *range(0x20, 0x7F)])
LENGTH_DIGITS = 5
# The input header's REF (lems.wire.headers.REF_LEN; headers imports this module, not the other way).
REF_BYTES = 10
PRINTABLE = bytes(range(0x20, 0x7F))
# How much of an offending input is kept for its echo (PROTOCOL.md 6: the first 100 characters).
ECHO_BYTES = 100


@attrs.frozen
class Frame:
    payload: bytes


@attrs.frozen
class FrameError:
    code: str
    reason: str
    original: bytes = b""
    ref: str = ""


@attrs.frozen
class Overrun:
    reason: str


Event = Union[Frame, FrameError, Overrun]


def forbidden(payload: bytes) -> int:
    """Index of the first byte not allowed in a payload, or -1."""
    bad = payload.translate(None, ALLOWED)
    return payload.index(bad[0]) if bad else -1


def _printable(data: bytes) -> bytes:
    """The offending input as it can be shown back in an error frame."""
    return bytes(b if 0x20 <= b < 0x7F else 0x3F for b in data[:ECHO_BYTES])


def ref_of(payload: bytes) -> str:
    """The REF to give back for an input refused before its header could be read (PROTOCOL.md 3).

    The first 10 bytes, without their space padding, when all 10 have been read and
    all are printable (0x20-0x7E); otherwise blank.  A REF holding a forbidden byte
    (or CR or LF) is not echoed: it could not be written back as the terminal sent
    it, and a REF with a byte changed would match nothing anyway.
    """
    head = payload[:REF_BYTES]
    if len(head) < REF_BYTES or head.translate(None, PRINTABLE):
        return ""
    return head.decode("ascii").rstrip(" ")


def _error(code: str, reason: str, offending: bytes) -> FrameError:
    """A framing error about one input whose first bytes are ``offending``."""
    return FrameError(code, reason, _printable(offending), ref_of(offending))


class _Framer:
    """Shared limits and the good-frame check."""

    def __init__(self, max_payload: int = 16384, max_garbage: int = 65536) -> None:
        self.max_payload = max_payload
        self.max_garbage = max_garbage
        self._buffer = bytearray()
        # Bad bytes since the last good frame; too many and the connection goes.
        self.garbage = 0
        self.closed = False

    def _complete(self, payload: bytes, events: list[Event]) -> None:
        bad = forbidden(payload)
        if bad >= 0:
            self._bad(len(payload), events, _error(
                ".10.", f"INVALID CHARACTER X'{payload[bad]:02X}' AT POSITION {bad + 1}", payload))
            return
        self.garbage = 0
        events.append(Frame(payload.replace(b"\r\n", b"\n")))

    def _bad(self, count: int, events: list[Event], error: FrameError | None) -> None:
        self.garbage += count
        if error is not None:
            events.append(error)
        if self.garbage > self.max_garbage:
            self.closed = True
            self._buffer.clear()
            events.append(Overrun(f"MORE THAN {self.max_garbage} INVALID BYTES IN A ROW"))

    @property
    def buffered(self) -> int:
        return len(self._buffer)


class StxFramer(_Framer):
    """``0x02`` payload ``0x03``; resynchronises on the next ``0x02``."""

    def __init__(self, max_payload: int = 16384, max_garbage: int = 65536) -> None:
        super().__init__(max_payload, max_garbage)
        self._in_frame = False
        # Set while skipping the rest of an oversized frame (already answered .31.).
        self._skipping = False
        # Set while inside a run of bytes outside frames (answered once per run).
        self._in_garbage = False

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self.closed:
            return events
        pos, end = 0, len(data)
        while pos < end and not self.closed:
            if not self._in_frame:
                stx = data.find(b"\x02", pos)
                junk = (stx if stx >= 0 else end) - pos
                if junk:
                    error = None if self._in_garbage else FrameError(
                        ".10.", "DATA OUTSIDE A FRAME DISCARDED", _printable(data[pos:pos + junk]))
                    self._in_garbage = True
                    self._bad(junk, events, error)
                if stx < 0:
                    break
                self._in_frame, self._in_garbage, self._skipping = True, False, False
                self._buffer.clear()
                pos = stx + 1
                continue
            # Inside a frame: the payload ends at ETX; a new STX means the frame was cut off.
            etx = data.find(b"\x03", pos)
            stx = data.find(b"\x02", pos)
            stop = min(i for i in (etx, stx, end) if i >= 0)
            chunk = data[pos:stop]
            if self._skipping:
                self._bad(len(chunk), events, None)
            elif len(self._buffer) + len(chunk) > self.max_payload:
                self._skipping = True
                # Only the first bytes are kept (the REF and the echo); the rest is counted, not held.
                # With max_payload >= 10 they always hold the whole REF.
                head = (bytes(self._buffer[:ECHO_BYTES]) + chunk[:ECHO_BYTES])[:ECHO_BYTES]
                self._bad(len(self._buffer) + len(chunk), events, _error(
                    ".31.", f"FRAME LONGER THAN {self.max_payload} BYTES DISCARDED", head))
                self._buffer.clear()
            else:
                self._buffer += chunk
            if stop == end:
                break
            if stop == etx and (stx < 0 or etx < stx):
                if not self._skipping:
                    self._complete(bytes(self._buffer), events)
                self._buffer.clear()
                self._in_frame = self._skipping = False
                pos = etx + 1
            else:  # STX before ETX: the current frame never ended
                if not self._skipping:
                    self._bad(len(self._buffer), events, _error(
                        ".10.", "FRAME NOT TERMINATED BEFORE NEXT STX", bytes(self._buffer[:ECHO_BYTES])))
                self._buffer.clear()
                self._skipping = False
                pos = stx + 1
        return events

    @staticmethod
    def encode(payload: bytes) -> bytes:
        return b"\x02" + payload + b"\x03"


class LengthFramer(_Framer):
    """A 5-digit ASCII decimal length, then that many payload bytes.

    A length prefix that is not 5 digits cannot be trusted to say where the next
    frame starts, so everything buffered is discarded with a .10.; an oversized
    length is skipped exactly (.31.), which keeps the stream in step.
    """

    def __init__(self, max_payload: int = 16384, max_garbage: int = 65536) -> None:
        super().__init__(max_payload, max_garbage)
        self._skip = 0  # payload bytes of an oversized frame still to discard

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self.closed:
            return events
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            self._bad(taken, events, None)
            data = data[taken:]
        self._buffer += data
        buf = self._buffer
        pos = 0
        while not self.closed and len(buf) - pos >= LENGTH_DIGITS:
            prefix = bytes(buf[pos:pos + LENGTH_DIGITS])
            if not prefix.isdigit():
                # No REF: without a length there is no telling where the input starts.
                self._bad(len(buf) - pos, events, FrameError(
                    ".10.", "INVALID LENGTH PREFIX, INPUT DISCARDED", _printable(bytes(buf[pos:pos + ECHO_BYTES]))))
                pos = len(buf)
                break
            size = int(prefix)
            if size > self.max_payload:
                available = len(buf) - pos - LENGTH_DIGITS
                if available < min(size, REF_BYTES):
                    break  # answered once its REF is in (at most 15 bytes wait)
                taken = min(size, available)
                self._skip = size - taken
                start = pos + LENGTH_DIGITS
                self._bad(taken + LENGTH_DIGITS, events, _error(
                    ".31.", f"FRAME LONGER THAN {self.max_payload} BYTES DISCARDED",
                    bytes(buf[start:start + min(taken, ECHO_BYTES)])))
                pos += LENGTH_DIGITS + taken
                continue
            if len(buf) - pos - LENGTH_DIGITS < size:
                break
            start = pos + LENGTH_DIGITS
            self._complete(bytes(buf[start:start + size]), events)
            pos = start + size
        del buf[:pos]
        return events

    @staticmethod
    def encode(payload: bytes) -> bytes:
        return b"%05d" % len(payload) + payload


FRAMERS = {"stx": StxFramer, "length": LengthFramer}
