"""Operator secrets: scrypt password hashes and TOTP (RFC 6238) one-time codes.

Password hashes are self-describing strings, so the cost parameters can be
raised later without invalidating hashes already stored in terminals/::

    scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>

with n = 2**17, r = 8, p = 1 (OWASP's minimum for scrypt), a 16-byte random salt
and a 32-byte key.  That costs about 0.45 s of one core and 128 MiB per hash or
check on the development machine (docs/SECURITY.md has the figures), on purpose:
it is what makes a stolen operators file slow to attack.  Callers on the reactor
thread run ``verify_password`` in a worker thread (the link does), and the switch
checks ``DUMMY_HASH`` for unknown operators so that timing does not reveal which
ids exist.

A hash stored at a lower cost still verifies.  When it does, ``verify_password``
(already off the reactor thread) also makes the hash at today's cost and leaves
it for the switch to collect with ``take_upgrade``: the switch writes it to the
registry after the sign-on succeeds, so old hashes are replaced one sign-on at a
time and the reactor never computes a hash.

``password_problem`` says which rule of docs/SECURITY.md a new password breaks.

TOTP is RFC 6238 as authenticator apps do it: SHA-1, 30-second steps, 6 digits,
a base32 secret (padding optional).  Time is always passed in as seconds since
the epoch, so tests and the switch's clock decide what "now" is.
"""

from __future__ import annotations

import base64
import binascii
import collections
import os
import threading
from typing import Iterable, Optional

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

SCHEME = "scrypt"
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32

# A stored hash names its own cost; these caps stop a corrupt or hostile entry
# from making a sign-on allocate gigabytes (memory is about 128 * n * r bytes).
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16

TOTP_STEP = 30
TOTP_DIGITS = 6


# -- passwords -----------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(salt: bytes, length: int, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=length, n=n, r=r, p=p)


def hash_password(password: str, *, n: Optional[int] = None) -> str:
    """A new salted scrypt hash of ``password`` in the self-describing form (about 0.45 s).

    ``n`` (a power of two) is only lowered by tests that hash many passwords.
    """
    n = target_n if n is None else n
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(salt, KEY_BYTES, n, SCRYPT_R, SCRYPT_P).derive(password.encode("utf-8"))
    return f"{SCHEME}${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse(stored: object) -> Optional[tuple[int, int, int, bytes, bytes]]:
    """(n, r, p, salt, key) of a hash this module wrote, or None."""
    if not isinstance(stored, str):
        return None
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = (int(x, 10) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if not (1 < n <= _MAX_N and 0 < r <= _MAX_R and 0 < p <= _MAX_P) or len(expected) < 16 or not salt:
        return None
    return n, r, p, salt, expected


def needs_rehash(stored: str) -> bool:
    """True for a well-formed hash made at a lower cost than today's (n, r or p below the current)."""
    parsed = _parse(stored)
    return parsed is not None and (parsed[0] < target_n or parsed[1] < SCRYPT_R or parsed[2] < SCRYPT_P)


# Compared against when the operator id does not exist (or is not of the ORI given), so a
# refused sign-on costs what a real check costs.  Today's cost; a random key no password has.
def _dummy(n: int) -> str:
    return f"{SCHEME}${n}${SCRYPT_R}${SCRYPT_P}${_b64(os.urandom(SALT_BYTES))}${_b64(os.urandom(KEY_BYTES))}"


# Today's cost: what new hashes get and what older ones are raised to at sign-on.
# SCRYPT_N unless the home's [session] password_cost says otherwise (set_target_cost).
target_n = SCRYPT_N
DUMMY_HASH = _dummy(target_n)


def set_target_cost(n: int) -> None:
    """The scrypt N this switch hashes and rehashes to (a power of two, 2^4 to 2^20).

    Below SCRYPT_N only for a benchmark home, whose sign-ons are not what it measures.
    """
    global target_n, DUMMY_HASH
    if n < 16 or n > _MAX_N or n & (n - 1):
        raise ValueError(f"scrypt N must be a power of two from 16 to {_MAX_N}, not {n}")
    if n != target_n:
        target_n, DUMMY_HASH = n, _dummy(n)

# Hashes at today's cost made by verify_password for old hashes it accepted, by old hash.
_UPGRADES: "collections.OrderedDict[str, str]" = collections.OrderedDict()
_UPGRADES_KEPT = 64
_upgrading: set[str] = set()  # old hashes whose upgrade a worker thread is making now
_upgrades_lock = threading.Lock()


def take_upgrade(stored: str) -> Optional[str]:
    """The hash at today's cost for the old ``stored`` hash, made when it last verified (once)."""
    with _upgrades_lock:
        return _UPGRADES.pop(stored, None)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for a wrong password or a malformed hash.

    The comparison is constant-time (cryptography's ``Scrypt.verify``).  A match
    against a hash of a lower cost leaves a hash at today's cost for
    ``take_upgrade`` (this runs in the link's worker thread, so the reactor does not pay).
    """
    parsed = _parse(stored)
    if parsed is None or not isinstance(password, str):
        return False
    n, r, p, salt, expected = parsed
    try:
        _scrypt(salt, len(expected), n, r, p).verify(password.encode("utf-8"), expected)
    except InvalidKey:
        return False
    except ValueError:
        # n not a power of two, or parameters the backend refuses: not a hash we wrote.
        return False
    if needs_rehash(stored):
        with _upgrades_lock:
            if stored in _UPGRADES or stored in _upgrading:
                return True  # one upgrade per old hash, however many terminals sign on with it at once
            _upgrading.add(stored)
        try:
            upgraded = hash_password(password)
        finally:
            with _upgrades_lock:
                _upgrading.discard(stored)
        with _upgrades_lock:
            _UPGRADES[stored] = upgraded
            while len(_UPGRADES) > _UPGRADES_KEPT:
                _UPGRADES.popitem(last=False)
    return True


# -- password rules (docs/SECURITY.md, "Sign-on rules and passwords") -------------------------------

MIN_LENGTH = 8
MAX_LENGTH = 64          # the SON field PWD holds up to 64 characters
HISTORY = 10             # a new password is none of the operator's previous ten

# Commonly used and expected passwords (the CJIS Security Policy's banned list, IA-5(1)(a)),
# compared without case and without the digits and symbols people add at the end
# ("Password2026!" is "password").  A home may add its own list (conf/banned-passwords.txt).
BANNED = frozenset("""
password passw0rd passphrase letmein welcome welcome1 admin administrator root toor guest user login
qwerty qwertyuiop asdfgh asdfghjkl zxcvbnm azerty iloveyou monkey dragon master shadow sunshine princess
football baseball basketball soccer hockey superman batman trustno1 starwars whatever freedom
changeme default access hello abc abcd abcdef abcdefgh abc123 test tester testing
police sheriff officer deputy trooper dispatch dispatcher badge cruiser patrol detective sergeant
lems leds ncic nlets cjis oregon portland salem
summer winter spring autumn monday friday january december
""".split())


def _base_word(password: str) -> str:
    """The password without case and without the digits and symbols at its end (and start)."""
    return password.lower().strip("0123456789!@#$%^&*()-_=+[]{};:'\",<>/?`~| ")


def _trivial(password: str) -> bool:
    """One character repeated, a block repeated, or a straight run (12345678, abcdefgh, 87654321)."""
    text = password.lower()
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return True
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return steps in ({1}, {-1})


def password_problem(password: str, operator_id: str, ori: str = "",
                     banned: Iterable[str] = ()) -> Optional[str]:
    """Why ``password`` may not be an operator's password (the rule it breaks), or None.

    The rules, in the order they are checked, are docs/SECURITY.md's list; the
    reuse rule needs the operator's old hashes and is ``reused``.
    """
    if not password.isascii() or not password.isprintable():
        return "a password is printable ASCII (what a terminal can send)"
    if "." in password:
        return "a password cannot contain a period (it separates fields)"
    if len(password) < MIN_LENGTH:
        return f"a password has at least {MIN_LENGTH} characters (this one has {len(password)})"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters, what the SON field PWD holds"
    lower = password.lower()
    for word in (operator_id, ori):
        if word and word.lower() in lower:
            return f"a password does not contain the operator id or the agency's ORI ({word.upper()})"
    base = _base_word(password)
    if lower in BANNED or base in BANNED or lower in banned or base in banned:
        return "a password is not a commonly used, expected or compromised password (the banned list)"
    if _trivial(password) or (base and _trivial(base) and len(base) >= 4):
        return "a password is not a repeated or sequential string of characters (aaaaaaaa, 12345678)"
    return None


def reused(password: str, hashes: Iterable[str]) -> bool:
    """True when ``password`` is the password of one of ``hashes`` (the current and previous ones)."""
    return any(verify_password(password, stored) for stored in hashes)


# -- TOTP ----------------------------------------------------------------------------------------

def decode_secret(secret_b32: str) -> bytes:
    """Key bytes of a base32 TOTP secret; spaces, case and missing padding are tolerated.

    Raises ValueError for text that is not base32.
    """
    text = "".join(secret_b32.split()).upper().rstrip("=")
    if not text:
        raise ValueError("empty TOTP secret")
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except binascii.Error as exc:
        raise ValueError(f"TOTP secret is not base32: {exc}") from None


def _totp(key: bytes, digits: int) -> TOTP:
    # Authenticator secrets are commonly 80 bits (16 base32 characters), below
    # cryptography's 128-bit default minimum, hence enforce_key_length=False.
    return TOTP(key, digits, SHA1(), TOTP_STEP, enforce_key_length=False)


def totp_now(secret_b32: str, at: float, *, digits: int = TOTP_DIGITS) -> str:
    """The code for the 30-second step containing ``at`` (seconds since the epoch)."""
    return _totp(decode_secret(secret_b32), digits).generate(at).decode("ascii")


def verify_totp(secret_b32: str, code: str, at: float, window: int = 1) -> bool:
    """True when ``code`` is the code at ``at`` or within ``window`` steps either side.

    One step each way absorbs clock skew between the terminal's authenticator
    and the switch.  A malformed secret or code is simply False.  Every step in
    the window is checked, whatever matches first, so the time taken does not
    say which step matched.
    """
    if not isinstance(code, str) or len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return False
    try:
        totp = _totp(decode_secret(secret_b32), TOTP_DIGITS)
    except ValueError:
        return False
    token = code.encode("ascii")
    matched = False
    for step in range(-window, window + 1):
        moment = at + step * TOTP_STEP
        if moment < 0:
            continue
        try:
            totp.verify(token, moment)
            matched = True
        except InvalidToken:
            pass
    return matched
