"""The surname phonetic code used by name searches (PROTOCOL.md 5.1).

NCIC matches the surname of a name inquiry by its Soundex code (the American
Soundex of the US Census, with the H/W rule), so this module implements that
rather than NYSIIS: hits and misses then look like the real system's, including
its well known blind spots (DOE and DOH match, and SCHMIDT and SMITH; PHILLIPS and FILLIPS do not).

Soundex alone would make punctuation and spacing decide a hit, so a surname
gets a small *set* of keys and two names match when their sets share one:

* the code of the whole surname with everything but letters dropped
  (``O'BRIEN`` is coded as ``OBRIEN``, ``SMITH-JONES`` as ``SMITHJONES``);
* for a hyphenated surname, the code of each part, so ``SMITH-JONES`` and
  ``SMITH`` match (NCIC advises entering the parts as aliases; doing it here means
  a record entered without them is still found);
* for a surname written with a separate prefix (``O'BRIEN``, ``D'ANGELO``,
  ``VAN DYKE``, ``DE LA CRUZ``), the code without the prefix, so a clerk who
  dropped it still gets the hit.  A prefix written solid (``VANDYKE``, ``DELEON``)
  is not split off: there is no telling ``DEAN`` from ``DE AN``.

``MC`` and ``MAC`` need no rule: Soundex already codes ``MCDONALD`` and
``MACDONALD`` alike (M235), because a vowel after the first letter is dropped.
Generational suffixes (``JR``, ``SR``, ``II``...) are not part of the surname.
"""

from __future__ import annotations

import functools
import re

# American Soundex digit for each consonant; vowels and Y separate equal codes,
# H and W do not (the Census rule NCIC follows).
_DIGITS = {
    **dict.fromkeys("BFPV", "1"),
    **dict.fromkeys("CGJKQSXZ", "2"),
    **dict.fromkeys("DT", "3"),
    "L": "4",
    **dict.fromkeys("MN", "5"),
    "R": "6",
}
_TRANSPARENT = frozenset("HW")

# Prefixes split off only when written as a separate word or with an apostrophe.
PREFIXES = frozenset({
    "O", "D", "L", "MC", "MAC", "VAN", "VON", "DER", "DEN", "DE", "DI", "DA", "DU", "DEL", "DELA",
    "DELLA", "DOS", "DAS", "LA", "LE", "LO", "ST", "SAINT", "TEN", "TER", "BEN", "ABU", "AL", "EL",
})
SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV", "2ND", "3RD", "ESQ"})

_WORD_SPLIT = re.compile(r"[\s']+")
_NOT_LETTER = re.compile(r"[^A-Z]")


def soundex(text: str) -> str:
    """The four-character American Soundex code of ``text`` ("" if it has no letters)."""
    letters = _NOT_LETTER.sub("", text.upper())
    if not letters:
        return ""
    out = [letters[0]]
    last = _DIGITS.get(letters[0], "")
    for char in letters[1:]:
        if char in _TRANSPARENT:
            continue
        digit = _DIGITS.get(char, "")
        if digit and digit != last:
            out.append(digit)
            if len(out) == 4:
                break
        last = digit
    return "".join(out).ljust(4, "0")


def surname(name: str) -> str:
    """The surname of an NCIC-style name ``LAST, FIRST MIDDLE``, suffixes removed."""
    last = name.split(",", 1)[0].strip().upper()
    words = last.split()
    while len(words) > 1 and words[-1].strip(".") in SUFFIXES:
        words.pop()
    return " ".join(words)


def _part_variants(part: str) -> list[str]:
    """A hyphen-free surname part, and the part without each separated prefix."""
    words = [w for w in _WORD_SPLIT.split(part) if w]
    variants = ["".join(words)]
    # "DE LA CRUZ" -> DELACRUZ, LACRUZ, CRUZ: drop leading prefix words one by one.
    start = 0
    while start < len(words) - 1 and words[start] in PREFIXES:
        start += 1
        variants.append("".join(words[start:]))
    return variants


def surname_code(name: str) -> str:
    """The Soundex of the whole surname of ``name`` (its primary key)."""
    return soundex(surname(name))


def surname_keys(name: str) -> frozenset[str]:
    """Every phonetic key of the surname of ``name`` (empty if it has no letters).

    Two names match phonetically when their key sets intersect.
    """
    return _keys(surname(name))


# Surnames repeat a great deal in files and inquiries; coding each once pays.
@functools.lru_cache(maxsize=1 << 16)
def _keys(last: str) -> frozenset[str]:
    texts = [last.replace("-", "")]
    parts = [p for p in last.split("-") if p.strip()]
    if len(parts) > 1:
        texts.extend(parts)
    keys = set()
    for text in texts:
        for variant in _part_variants(text):
            code = soundex(variant)
            if code:
                keys.add(code)
    return frozenset(keys)


def phonetic_match(name_a: str, name_b: str) -> bool:
    """Whether two names' surnames match phonetically."""
    return not surname_keys(name_a).isdisjoint(surname_keys(name_b))
