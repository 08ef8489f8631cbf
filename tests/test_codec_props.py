"""Property tests: the construct grammar is the oracle.

For every key, a message generated from the catalogue's field specs survives
build-then-parse unchanged, and the hand-written syntax agrees with the
construct grammar.  Random text and mutated valid messages never raise anything
but Reject, and always return quickly.
"""

from __future__ import annotations

import string
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lems.wire.catalogue import FieldSpec, KeySpec
from lems.wire.codec import Codec
from lems.base.errors import Reject
from lems.wire.message import Message

FORMATS = Path(__file__).resolve().parent.parent / "formats"
CODEC = Codec.from_dir(FORMATS)
GRAMMAR = Codec.from_dir(FORMATS, "construct")
COMPILED = Codec.from_dir(FORMATS, "compiled")
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

UPPER = string.ascii_uppercase
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != ".")
FOLDED = "".join(ch for ch in PRINTABLE if not ch.islower())


def _sized(alphabet: str, field: FieldSpec) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=field.min, max_size=min(field.max, 40))


def value_strategy(field: FieldSpec) -> st.SearchStrategy[str]:
    fmt = field.format
    if fmt == "date":
        return st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}")
    if fmt == "code":
        return st.sampled_from(field.codes)
    if fmt == "nic":
        return st.tuples(st.sampled_from(field.codes), st.text(string.digits, min_size=9, max_size=9)).map("".join)
    if fmt == "ori":  # COR of the prohibited persons keys
        return st.text(UPPER + string.digits, min_size=9, max_size=9)
    if fmt == "name":
        part = st.text(UPPER, min_size=1, max_size=12)
        return st.tuples(part, st.sampled_from([", ", ","]), part).map("".join).filter(lambda s: len(s) <= field.max)
    if field.pattern:
        return st.from_regex(field.pattern, fullmatch=True).filter(
            lambda s: field.min <= len(s) <= field.max and "\n" not in s and "." not in s)
    if fmt == "numeric":
        return _sized(string.digits, field)
    if fmt == "alpha":
        return _sized(UPPER, field)
    if fmt == "alnum":
        return _sized(UPPER + string.digits, field)
    # Folded fields arrive upper case; a kept-case field (PWD) may hold anything printable.
    return _sized(PRINTABLE if not field.fold else FOLDED, field)


ORI = st.text(UPPER + string.digits, min_size=9, max_size=9)


@st.composite
def messages(draw, spec: KeySpec) -> Message:
    chosen = [code for code in spec.fields if draw(st.booleans())]
    present = set(chosen)
    for requirement in spec.required:  # make every mandatory combination hold
        needs = set(requirement.alternatives[0])
        if requirement.when is not None:
            needs.add(requirement.when[0])
        chosen += [c for c in sorted(needs) if c not in present]
        present |= needs
    chosen = draw(st.permutations(chosen))
    fields = []
    for code in chosen:
        field = spec.fields[code]
        when = [r.when for r in spec.required if r.when and r.when[0] == code]
        value = when[0][1] if when and draw(st.booleans()) else draw(value_strategy(field))
        fields.append((code, value))
        if field.repeat and draw(st.booleans()):
            fields.append((code, draw(value_strategy(field))))
    ori = draw(ORI) if spec.ori_required or draw(st.booleans()) else ""
    if not spec.nlets:
        return Message(spec.mke, ori, tuple(fields))
    dest = st.one_of(ORI, st.sampled_from(["OR", "WA", "NL", "APB"]))
    dests = tuple(draw(st.lists(dest, min_size=1, max_size=spec.max_dests, unique=True)))
    control = draw(st.one_of(st.none(), st.text(UPPER + string.digits + "-", min_size=1, max_size=10)))
    if spec.free_text:
        line = st.text((PRINTABLE if not spec.fold_body else FOLDED) + ".", min_size=1, max_size=60)
        body = draw(st.lists(line, min_size=1, max_size=4).map("\n".join)
                    .filter(lambda b: b.strip() and not b.startswith("\n")))
        return Message(spec.mke, ori, (), dests, control, body)
    return Message(spec.mke, ori, tuple(fields), dests, control)


@pytest.mark.parametrize("mke", sorted(CODEC.keys))
def test_build_then_parse_is_identity(mke):
    spec = CODEC.keys[mke]

    @SETTINGS
    @given(messages(spec))
    def check(msg):
        text = CODEC.build(msg)
        assert CODEC.parse(text) == msg
        assert GRAMMAR.parse(text) == msg
        assert COMPILED.parse(text) == msg
        # Lower case on the wire reads the same (PROTOCOL.md 2), except where case is kept.
        if not spec.unfolded and (spec.fold_body or not spec.free_text):
            assert CODEC.parse(text.lower()) == msg

    check()


def _parse_bounded(codec: Codec, text: str) -> None:
    start = time.perf_counter()
    try:
        msg = codec.parse(text)
    except Reject as reject:
        assert reject.code in (".10.", ".11.", ".12.", ".13.", ".23.", ".31.")
        assert reject.original == text
    else:
        assert isinstance(msg, Message)
    assert time.perf_counter() - start < 0.5


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_only_rejects(text):
    _parse_bounded(CODEC, text)


@SETTINGS
@given(st.sampled_from(sorted(CODEC.keys)), st.text(PRINTABLE + "./,*\n", max_size=200))
def test_key_then_noise_only_rejects(mke, noise):
    for codec in (CODEC, COMPILED):
        _parse_bounded(codec, f"{mke}.{noise}")


@st.composite
def mutated(draw) -> str:
    text = CODEC.keys[draw(st.sampled_from(sorted(CODEC.keys)))].example
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "double"]))
        ch = draw(st.sampled_from(list("./,*\nA1 ") + [chr(0), "é"]))
        if op == "insert":
            text = text[:at] + ch + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + 1:]
        elif op == "replace":
            text = text[:at] + ch + text[at + 1:]
        elif op == "truncate":
            text = text[:at]
        else:
            text = text[:at] + text[at:] * 2
    return text


@SETTINGS
@given(mutated())
def test_mutated_messages_only_reject_and_grammars_agree(text):
    outcomes = []
    for codec in (CODEC, GRAMMAR, COMPILED):
        _parse_bounded(codec, text)
        try:
            outcomes.append(codec.parse(text))
        except Reject as reject:
            outcomes.append(reject.code)
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_huge_input_is_bounded():
    for text in ("QW." + "A" * 1_000_000, "A" * 1_000_000, "AM.OR9990100.OR.TXT" + "x." * 500_000):
        _parse_bounded(CODEC, text)
