"""Switch error and status codes (PROTOCOL.md section 6).

A refusal anywhere in the engine is a ``Reject``: the code, a reason an operator
understands, and the first 100 characters of the offending input.  The switch
turns it into one ``E`` frame.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    ".01.": "DESTINATION DOES NOT ACCEPT THIS MESSAGE TYPE",
    ".02.": "DESTINATION OUT OF SERVICE, MESSAGE QUEUED, WILL FORWARD",
    ".04.": "DESTINATION ON REMOVE STATUS, MESSAGE NOT QUEUED",
    ".10.": "INVALID FRAME OR CHARACTER",
    ".11.": "UNKNOWN MESSAGE KEY",
    ".12.": "INVALID FIELD",
    ".13.": "MANDATORY FIELD MISSING",
    ".20.": "SIGN-ON REQUIRED, REJECTED, OR OPERATOR LOCKED",
    ".21.": "TERMINAL OR ORI NOT AUTHORIZED",
    ".22.": "NOT AUTHORIZED FOR THIS MESSAGE KEY, FILE OR PURPOSE",
    ".23.": "PURPOSE CODE OR ATTENTION FIELD MISSING OR INVALID",
    ".24.": "ADMINISTRATIVE MESSAGE NOT PERMITTED NOW OR TO THIS DESTINATION",
    ".25.": "USER AGREEMENT NOT IN FORCE",
    ".30.": "FILE HANDLER UNAVAILABLE OR FAILED",
    ".31.": "MESSAGE TOO LONG",
}

ORIGINAL_LIMIT = 100


class Reject(Exception):
    """A refusal with a section 6 code.

    ``reason`` is the specific reason (e.g. ``FIELD DOB MUST BE CCYYMMDD``);
    ``original`` is the offending input, cut to 100 characters when rendered.
    """

    def __init__(self, code: str, reason: str = "", original: str = "") -> None:
        if code not in CODES:
            raise ValueError(f"unknown switch code {code!r}")
        self.code = code
        self.reason = reason or CODES[code]
        self.original = original
        super().__init__(f"{code} {self.reason}")

    def with_original(self, original: str) -> "Reject":
        if not self.original:
            self.original = original
        return self

    def text(self) -> str:
        """The E frame text: code and reason, then ORIGINAL MESSAGE and the input."""
        lines = [f"{self.code} {self.reason}"]
        if self.original:
            lines += ["ORIGINAL MESSAGE", self.original[:ORIGINAL_LIMIT]]
        return "\n".join(lines)
