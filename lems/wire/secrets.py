"""Sign-on secrets out of every text the switch keeps or shows (PROTOCOL.md 4 item 4).

``mask(text)`` is the one function that does it: the password and the one-time
code of a sign-on become ``PWD/*`` and ``OTP/*``.  The switch calls it on every
input it journals (good frames, bad frames, the error echo of a refusal), the
capture on every input it writes, and every reader of the journal (``lems audit
search`` and ``export``, the console's ``audit``) on every text it shows, so a
journal written before masking existed shows ``PWD/*`` too.

What counts as a secret, as far as the codec's grammar goes (lems.wire.codec):

* a field ``PWD/`` or ``OTP/`` anywhere in the text: at its start or after a
  period or a line break, in any case (``pwd/`` is a password too: the codec
  folds the code), spaces around the code tolerated;
* whatever the text holds (an 18-byte input header included: the field is
  found wherever it is, not counted from the start);
* its value runs to the next sign-on field (``.OPR/``, ``.OTP/``, ``.PWD/``) or
  the end of the text.  A password cannot hold a period (periods separate
  fields), but an operator can type one, and the codec would then read the
  rest as fields of its own; masking to the next sign-on field keeps that
  rest too.  ``/`` in a value is a character like any other.

A text without such a field is returned unchanged (the same object).
"""

from __future__ import annotations

import re
from typing import Optional

SECRET_CODES = ("PWD", "OTP")
MASKED = "*"

# Where a secret field starts: its code at the start of the text or of a field
# (after a period or a line break), any case, spaces around the code allowed.
_START = re.compile(r"(?:^|(?<=[.\n\r]))[ \t]*(PWD|OTP)[ \t]*/", re.IGNORECASE)
# Where a secret's value ends: the next sign-on field.
_NEXT = re.compile(r"\.[ \t\r\n]*(?:PWD|OTP|OPR)[ \t]*/", re.IGNORECASE)


def _spans(text: str) -> list[tuple[str, int, int, int]]:
    """(code, field start, value start, value end) of each secret field, in order."""
    out = []
    at = 0
    while True:
        found = _START.search(text, at)
        if found is None:
            return out
        end_match = _NEXT.search(text, found.end())
        end = end_match.start() if end_match else len(text)
        out.append((found.group(1).upper(), found.start(), found.end(), end))
        at = end


def mask(text: Optional[str]) -> Optional[str]:
    """``text`` with every sign-on password and one-time code written ``PWD/*`` / ``OTP/*``."""
    if not text or "/" not in text:
        return text
    spans = _spans(text)
    if not spans:
        return text
    pieces, at = [], 0
    for code, start, _, end in spans:
        pieces += [text[at:start], f"{code}/{MASKED}"]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)


def period_in_secret(text: str) -> Optional[str]:
    """The code (``PWD``/``OTP``) of the first secret whose value holds a period, or None.

    The codec would split such a value and name its pieces in the reason of a
    ``.12.``; the sign-on refuses it first, naming only the field.
    """
    for code, _, value_start, end in _spans(text):
        if "." in text[value_start:end]:
            return code
    return None


def masked_codes(text: str) -> tuple[str, ...]:
    """Which secret fields ``text`` holds, in order (``("PWD", "OTP")``): what ``mask`` writes ``*``."""
    return tuple(code for code, *_ in _spans(text))
