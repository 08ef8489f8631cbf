"""Message text <-> ``Message``, driven by the catalogues (PROTOCOL.md 2 and 5).

``Codec.parse(text)`` takes the text after the 18-byte input header and returns
a frozen ``Message`` or raises ``Reject``: ``.10.`` a character framing should
have refused, ``.11.`` unknown key, ``.31.`` longer than the key allows,
``.12.`` an invalid field (naming it), ``.13.`` mandatory data missing (naming
what is required; ``.23.`` where the catalogue says so, PUR and ATN on criminal
history keys).  Nothing else escapes it.  ``Codec.build(msg)`` writes the
canonical text (every field tagged, no line break after TXT) so that
``parse(build(m)) == m`` for every valid message.

How construct is used, and why the hot path is not construct.
The wire grammar has two layers.  The *syntax* (where the key, ORI,
destinations, control and body are; the period separated tokens) is declared
with construct below: ``NCIC_TEXT`` for NCIC, LEDS and control keys and
``NLETS_TEXT`` for Nlets keys, with ``TAGGED`` for one ``MFC/value`` token.  The
*meaning* of the tokens (which codes a key takes, positional slots, formats,
mandatory combinations) depends on the catalogue and is checked by one shared
function whichever layer found the tokens.  Construct builds every message
(``build``) and is the oracle of the property tests: the hand-written syntax
must find the same tokens as the grammar on any input.  Parsing on the hot path
uses the hand-written syntax (``str.split`` and ``find``): the bench
(``python -m lems.tools.bench_parse``) measures it at two to three times the speed of the
compiled grammar, which pays for bytes conversion and generic stream handling
on every token.  ``Codec(catalogue, grammar="compiled")`` (or ``"construct"``,
interpreted) parses through the grammar instead, behind the same cheap checks
(character set, key, length); a grammar failure is then diagnosed by the hand
path so the operator gets the same precise reject.

The grammar avoids ``GreedyRange`` and ``NullTerminated(require=False)``, which
stop at the first malformed element and silently drop the tail: ``Split`` reads
the rest of its stream once and returns every token, malformed or not.  Every
step is linear in the text, which is capped by the key's ``max_length``.

Line breaks: framing turned CR LF into LF; a lone CR is read as LF too.  One
line break right after ``TXT`` is ignored; line breaks at the end of the text
are not part of the message (terminals add them); in field messages a line
break at a token's edge is ignored (terminals wrap long lines), anywhere else
it makes the field invalid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional

import construct as c

from lems.wire.catalogue import Catalogue, CatalogueError, FileSpec, KeySpec
from lems.base.errors import Reject
from lems.wire.message import Message

GRAMMARS = ("hand", "construct", "compiled")
# Anything framing should have kept out: control characters other than LF, and non-ASCII.
_BAD_CHAR = re.compile(r"[^\x20-\x7e\n]")
_DEST = re.compile(r"[A-Z0-9]{2,9}")
MAX_CONTROL = 10


# -- the syntax, declared with construct ------------------------------------------------


class Split(c.Construct):
    r"""The rest of the stream as ``sep``-separated ASCII tokens.

    Unlike GreedyRange it cannot stop early: every byte lands in some token, so
    a malformed tail is handed on to be judged, never dropped.  An empty stream
    is no tokens.  Building refuses a token that contains the separator.
    """

    def __init__(self, sep: bytes) -> None:
        super().__init__()
        self.sep = sep

    def _parse(self, stream, context, path):
        data = c.stream_read_entire(stream, path)
        return [t.decode("ascii") for t in data.split(self.sep)] if data else []

    def _build(self, obj, stream, context, path):
        raw = [t.encode("ascii") for t in obj]
        if any(self.sep in t for t in raw):
            raise c.ValidationError(f"a token contains the separator {self.sep!r}", path=path)
        data = self.sep.join(raw)
        c.stream_write(stream, data, len(data), path)
        return obj

    def _emitparse(self, code):
        return f"(lambda d: [t.decode('ascii') for t in d.split({self.sep!r})] if d else [])(io.read())"


class LineBreak(c.Construct):
    """An optional LF (after TXT): consumed when present, never built."""

    def __init__(self) -> None:
        super().__init__()
        self.flagbuildnone = True

    def _parse(self, stream, context, path):
        here = c.stream_tell(stream, path)
        if stream.read(1) != b"\n":
            c.stream_seek(stream, here, 0, path)
        return None

    def _build(self, obj, stream, context, path):
        return None


def _word(term: bytes = b".") -> c.Construct:
    """ASCII up to and including a terminator that must be there."""
    return c.NullTerminated(c.GreedyString("ascii"), term=term, require=True)


# One tagged field: MFC, "/", the value (which may itself contain "/").
TAGGED = c.Struct("code" / _word(b"/"), "value" / c.GreedyString("ascii"))

# NCIC, LEDS and control keys: MKE.ORI.TOKEN.TOKEN...  The whole text is split,
# so "QW.ORI" and "QW.ORI." stay different (the second has an empty last token).
NCIC_TEXT = Split(b".")

# Nlets keys: MKE.ORI.DEST[,DEST...].[*CONTROL.]TXT[LF]<body>
NLETS_TEXT = c.Struct(
    "mke" / _word(),
    "ori" / _word(),
    "dests" / _word(),
    "control" / c.Optional(c.FocusedSeq("value", c.Const(b"*"), "value" / _word())),
    c.Const(b"TXT"),
    LineBreak(),
    "body" / c.GreedyString("ascii"),
)

_COMPILED: dict[str, Any] = {}


def _compiled(name: str) -> Any:
    """The grammar compiled once per process (compiling takes milliseconds)."""
    if name not in _COMPILED:
        _COMPILED[name] = {"ncic": NCIC_TEXT, "nlets": NLETS_TEXT}[name].compile()
    return _COMPILED[name]


# -- the codec ------------------------------------------------------------------------------


class Codec:
    """The catalogues plus the grammar: parse, build, and what a key is."""

    def __init__(self, catalogue: Catalogue, grammar: str = "hand") -> None:
        if grammar not in GRAMMARS:
            raise ValueError(f"grammar must be one of {GRAMMARS}")
        self.catalogue = catalogue
        self.grammar = grammar
        self.keys: Mapping[str, KeySpec] = catalogue.keys
        self.files: Mapping[str, FileSpec] = catalogue.files
        if grammar == "compiled":
            self._ncic, self._nlets = _compiled("ncic"), _compiled("nlets")
        else:
            self._ncic, self._nlets = NCIC_TEXT, NLETS_TEXT

    @classmethod
    def from_dir(cls, path: Path | str, grammar: str = "hand") -> "Codec":
        """Load formats/; every key's example must parse as that key, or CatalogueError."""
        codec = cls(Catalogue.load(path), grammar)
        for mke, spec in codec.keys.items():
            if not spec.example:
                continue
            try:
                msg = codec.parse(spec.example)
            except Reject as reject:
                raise CatalogueError(f"{spec.source}: key {mke}: example is rejected: "
                                     f"{reject.code} {reject.reason}") from None
            if msg.mke != mke:
                raise CatalogueError(f"{spec.source}: key {mke}: example is a {msg.mke} message")
        return codec

    def spec(self, mke: str) -> KeySpec:
        """The key's catalogue entry; an unknown key is a .11. reject."""
        spec = self.keys.get(mke)
        if spec is None:
            raise Reject(".11.", f"UNKNOWN MESSAGE KEY {mke[:10]}")
        return spec

    def file(self, name: str) -> FileSpec:
        return self.files[name]

    # -- parse ---------------------------------------------------------------------------

    def parse(self, text: str) -> Message:
        try:
            return self._parse(text)
        except Reject as reject:
            raise reject.with_original(text)

    def _parse(self, text: str) -> Message:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = text.rstrip("\n")
        bad = _BAD_CHAR.search(text)
        if bad is not None:
            raise Reject(".10.", f"INVALID CHARACTER X'{ord(bad.group()):02X}' AT POSITION {bad.start() + 1}")
        end = text.find(".")
        mke = (text if end < 0 else text[:end]).upper()
        spec = self.keys.get(mke)
        if spec is None:
            if not mke:
                raise Reject(".11.", "NO MESSAGE KEY")
            raise Reject(".11.", f"UNKNOWN MESSAGE KEY {mke[:10]}")
        if len(text) > spec.max_length:
            raise Reject(".31.", f"MESSAGE TOO LONG FOR {mke} - {len(text)} CHARACTERS, LIMIT {spec.max_length}")
        if spec.nlets:
            return self._parse_nlets(spec, text)
        return self._parse_ncic(spec, text)

    # NCIC, LEDS and control keys

    def _parse_ncic(self, spec: KeySpec, text: str) -> Message:
        folded = text.upper()
        if self.grammar == "hand":
            tokens = folded.split(".")
        else:
            tokens = self._grammar_tokens(folded)
        # Only SON's password keeps its case; take those tokens from the unfolded text.
        originals = text.split(".") if spec.unfolded else None
        if len(tokens) < 2:
            if spec.ori_required:
                raise Reject(".13.", "MANDATORY FIELD MISSING - ORI")
            return Message(spec.mke, "", raw=folded)
        if tokens[-1] == "" or (tokens[-1] == "\n" and len(tokens) > 2):
            raise Reject(".12.", "INVALID FORMAT - MESSAGE MUST NOT END WITH A PERIOD")
        ori = _ori(tokens[1])
        fields, raw_tokens = _fields(spec, tokens, 2, originals)
        _mandatory(spec, fields)
        raw = ".".join(raw_tokens) if originals is not None else folded
        return Message(spec.mke, ori, fields, raw=raw)

    def _grammar_tokens(self, folded: str) -> list[str]:
        try:
            return self._ncic.parse(folded.encode("ascii"))
        except (c.ConstructError, UnicodeError):
            # The grammar takes any ASCII; reaching here means the two layers disagree.
            raise Reject(".12.", "INVALID FORMAT") from None

    # Nlets keys

    def _parse_nlets(self, spec: KeySpec, text: str) -> Message:
        folded = text.upper()
        if self.grammar == "hand":
            head = _nlets_head(spec, folded)
        else:
            try:
                parsed = self._nlets.parse(folded.encode("ascii"))
            except (c.ConstructError, UnicodeError):
                _nlets_head(spec, folded)  # says precisely what is wrong
                raise Reject(".12.", "INVALID FORMAT") from None
            body_at = len(folded) - len(parsed.body)
            head = (parsed.ori, parsed.dests, parsed.control, body_at)
        ori_token, dest_token, control, body_at = head
        ori = _ori(ori_token)
        dests = _dests(spec, dest_token)
        if control is not None and not (1 <= len(control) <= MAX_CONTROL and "\n" not in control):
            raise Reject(".12.", f"INVALID FIELD CONTROL - 1 TO {MAX_CONTROL} CHARACTERS AFTER *")
        prefix = folded[:body_at]
        if spec.free_text:
            body = (folded if spec.fold_body else text)[body_at:]
            if not body.strip():
                raise Reject(".13.", "MANDATORY FIELD MISSING - MESSAGE TEXT AFTER TXT")
            return Message(spec.mke, ori, (), dests, control, body, raw=prefix + body)
        body = folded[body_at:]
        if not body:
            tokens: list[str] = []
        elif self.grammar == "hand":
            tokens = body.split(".")
        else:
            tokens = self._grammar_tokens(body)
        if tokens and tokens[-1].strip("\n") == "":
            raise Reject(".12.", "INVALID FORMAT - MESSAGE MUST NOT END WITH A PERIOD")
        fields, _ = _fields(spec, tokens, 0, None)
        _mandatory(spec, fields)
        return Message(spec.mke, ori, fields, dests, control, None, raw=folded)

    # -- build ------------------------------------------------------------------------------

    def build(self, msg: Message) -> str:
        """The canonical text of a message: every field tagged, in the message's order.

        It does not re-check the catalogue's rules (parse does); a value that
        cannot be written at all (a period, a non-ASCII character) is a ValueError.
        """
        spec = self.keys.get(msg.mke)
        if spec is None:
            raise ValueError(f"unknown message key {msg.mke!r}")
        pieces = [msg.ori, *msg.dests, msg.control or ""] + [v for _, v in msg.fields]
        if any("." in p or "\n" in p for p in pieces) or "," in "".join(msg.dests):
            raise ValueError(f"{msg.mke}: a value contains a period, comma or line break")
        try:
            tokens = [TAGGED.build({"code": code, "value": value}).decode("ascii") for code, value in msg.fields]
            if spec.nlets:
                body = (msg.body or "") if spec.free_text else NCIC_TEXT.build(tokens).decode("ascii")
                return NLETS_TEXT.build({"mke": msg.mke, "ori": msg.ori, "dests": ",".join(msg.dests),
                                         "control": msg.control, "body": body}).decode("ascii")
            head = [msg.mke, msg.ori] if msg.ori or spec.ori_required else [msg.mke]
            return NCIC_TEXT.build(head + tokens).decode("ascii")
        except (c.ConstructError, UnicodeError) as exc:
            raise ValueError(f"{msg.mke} cannot be written: {exc}") from None


# -- shared steps (both syntax layers end here) ---------------------------------------------


def _nlets_head(spec: KeySpec, folded: str) -> tuple[str, str, Optional[str], int]:
    """ORI token, destination token, control and where the body starts (hand-written syntax)."""
    p1 = folded.find(".")
    p2 = folded.find(".", p1 + 1) if p1 >= 0 else -1
    if p1 < 0 or p2 < 0:
        what = "ORI" if p1 < 0 or p1 + 1 == len(folded) else "DESTINATION"
        raise Reject(".13.", f"MANDATORY FIELD MISSING - {what}")
    p3 = folded.find(".", p2 + 1)
    if p3 < 0:
        what = "DESTINATION" if folded.startswith("TXT", p2 + 1) else "TXT"
        raise Reject(".13.", f"MANDATORY FIELD MISSING - {what}")
    at, control = p3 + 1, None
    if folded.startswith("*", at):
        p4 = folded.find(".", at)
        if p4 < 0:
            raise Reject(".13.", "MANDATORY FIELD MISSING - TXT")
        control, at = folded[at + 1:p4], p4 + 1
    if not folded.startswith("TXT", at):
        dest = folded[p2 + 1:p3]
        what = "DESTINATION" if dest.startswith("TXT") or dest.startswith("*") else "TXT"
        raise Reject(".13.", f"MANDATORY FIELD MISSING - {what}")
    at += 3
    if folded.startswith("\n", at):
        at += 1
    return folded[p1 + 1:p2], folded[p2 + 1:p3], control, at


def _ori(token: str) -> str:
    if len(token) != 9 or not token.isalnum() or not token.isascii():
        if not token:
            raise Reject(".13.", "MANDATORY FIELD MISSING - ORI")
        raise Reject(".12.", f"INVALID FIELD ORI {token[:12]} - MUST BE 9 LETTERS OR DIGITS")
    return token


def _dests(spec: KeySpec, token: str) -> tuple[str, ...]:
    if not token:
        raise Reject(".13.", "MANDATORY FIELD MISSING - DESTINATION")
    dests = tuple(token.split(","))
    if len(dests) > spec.max_dests:
        raise Reject(".12.", f"INVALID FIELD DEST - MORE THAN {spec.max_dests} DESTINATION"
                             f"{'S' if spec.max_dests > 1 else ''} FOR {spec.mke}")
    for dest in dests:
        if _DEST.fullmatch(dest) is None:
            raise Reject(".12.", f"INVALID FIELD DEST {dest[:12] or '(EMPTY)'} - "
                                 f"MUST BE AN ORI, A STATE CODE, NL OR A GROUP")
    if len(set(dests)) != len(dests):
        raise Reject(".12.", "INVALID FIELD DEST - A DESTINATION IS REPEATED")
    return dests


def _fields(spec: KeySpec, tokens: list[str], start: int,
            originals: Optional[list[str]]) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """Resolve tokens[start:] to (code, value) pairs.

    Also returns the tokens as received, with the original case put back where a
    field keeps it (``originals`` is the unfolded text's tokens, only for such keys).
    """
    out: list[tuple[str, str]] = []
    raw = list(tokens)
    specs = spec.fields
    positional = spec.positional
    slot = 0
    tagged_seen = False
    seen: set[str] = set()
    for i in range(start, len(tokens)):
        token = tokens[i]
        if "\n" in token:
            token = token.strip("\n")  # a terminal wrapped the line between fields
        slash = token.find("/")
        field = specs.get(token[:slash]) if slash > 0 else None
        if field is None and spec.other_fields and slash == 3 and token[:3].isalpha():
            # A field code the key does not take, positional slot or not (the PPF's minimum information).
            raise Reject(".12.", spec.other_fields.format(code=_show(token[:3])))
        if field is not None:
            tagged_seen = True
            value = token[slash + 1:]
        elif positional and not tagged_seen:
            if slot >= len(positional):
                raise Reject(".12.", f"INVALID FIELD {_show(token) or '(EMPTY)'} - "
                                     f"MORE THAN {len(positional)} POSITIONAL FIELDS FOR {spec.mke}")
            field = specs[positional[slot]]
            slot += 1
            if not token:
                continue  # an empty optional slot
            value = token
        elif slash > 0:
            raise Reject(".12.", f"INVALID FIELD {_show(token[:slash])} - NOT A FIELD OF {spec.mke}")
        elif not token:
            raise Reject(".12.", "INVALID FIELD (EMPTY) - TWO PERIODS IN A ROW")
        else:
            raise Reject(".12.", f"INVALID FIELD {_show(token)} - MUST BE MFC/VALUE")
        code = field.code
        if not field.fold and originals is not None:
            original = originals[i].strip("\n")
            value = original[len(original) - len(value):]
            raw[i] = originals[i]
        if code in seen and not field.repeat:
            raise Reject(field.invalid_code, f"INVALID FIELD {code} - GIVEN MORE THAN ONCE")
        problem = field.problem(value)
        if problem is not None:
            raise Reject(field.invalid_code, problem)
        seen.add(code)
        out.append((code, value))
    return tuple(out), raw


def _mandatory(spec: KeySpec, fields: tuple[tuple[str, str], ...]) -> None:
    if not spec.required:
        return
    present = dict(reversed(fields))  # first value of each code wins
    for requirement in spec.required:
        if not requirement.met(present):
            raise Reject(requirement.code, f"MANDATORY FIELD MISSING - {requirement.describe()}")


def _show(value: str) -> str:
    return value if len(value) <= 20 else value[:20] + "..."
