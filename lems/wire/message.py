"""The parsed message: what every layer after the codec works with."""

from __future__ import annotations

from typing import Optional

import attrs


@attrs.frozen
class Message:
    """One parsed message text (without the 18-byte input header).

    ``fields`` keeps the input order with positional fields already resolved to
    their three-letter codes.  Nlets-style messages carry ``dests`` and the
    optional ``control`` (without its ``*``); free-text keys (AM, AML, SM) carry
    ``body``.  ``raw`` is the text as received (case folded as PROTOCOL.md 2 says).
    """

    mke: str
    ori: str
    fields: tuple[tuple[str, str], ...] = ()
    dests: tuple[str, ...] = ()
    control: Optional[str] = None
    body: Optional[str] = None
    raw: str = attrs.field(default="", eq=False, repr=False)

    def get(self, code: str, default: Optional[str] = None) -> Optional[str]:
        for name, value in self.fields:
            if name == code:
                return value
        return default

    def values(self, code: str) -> tuple[str, ...]:
        return tuple(value for name, value in self.fields if name == code)

    def has(self, code: str) -> bool:
        return any(name == code for name, _ in self.fields)

    def field_map(self) -> dict[str, str]:
        """First value of each field code."""
        out: dict[str, str] = {}
        for name, value in self.fields:
            out.setdefault(name, value)
        return out


@attrs.frozen
class Record:
    """One record in a file: a wanted person, a stolen gun, a registration...

    ``file`` is the catalogue's file name (``wanted``, ``vehicle``...), ``fields``
    the record's data as ``MFC/value`` pairs in display order, ``entered`` the
    entry date ``CCYYMMDD``.  ``record_set`` says which data set holds it:
    ``LEDS`` (state), ``NCIC`` (national) or a state code (``OR``, ``WA``) for the
    Nlets-emulated state files.  ``caution`` is the whole caution line shown first
    in a hit (``WARNING - SUBJECT MAY BE ARMED AND DANGEROUS``).
    """

    file: str
    nic: str
    ori: str
    fields: tuple[tuple[str, str], ...]
    entered: str
    record_set: str
    caution: Optional[str] = None
    status: str = "active"

    def get(self, code: str, default: Optional[str] = None) -> Optional[str]:
        for name, value in self.fields:
            if name == code:
                return value
        return default
