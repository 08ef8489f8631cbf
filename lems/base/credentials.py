"""Operator secrets: scrypt password hashes and TOTP (RFC 6238) one-time codes.

Password hashes are self-describing strings, so the cost parameters can be
raised later without invalidating hashes already stored in terminals/::

    scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>

with n = 2**14, r = 8, p = 1, a 16-byte random salt and a 32-byte key.  That
costs about 50 ms and 16 MiB per hash or check, on purpose: it is what makes a
stolen operators file slow to attack.  Callers on the reactor thread should run
``verify_password`` in a worker thread (the link does), and the switch checks a
dummy hash for unknown operators so that timing does not reveal which ids exist.

TOTP is RFC 6238 as authenticator apps do it: SHA-1, 30-second steps, 6 digits,
a base32 secret (padding optional).  Time is always passed in as seconds since
the epoch, so tests and the switch's clock decide what "now" is.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

SCHEME = "scrypt"
SCRYPT_N = 2**14
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


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """A new salted scrypt hash of ``password`` in the self-describing form (about 50 ms).

    ``n`` (a power of two) is only lowered by tests that hash many passwords.
    """
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(salt, KEY_BYTES, n, SCRYPT_R, SCRYPT_P).derive(password.encode("utf-8"))
    return f"{SCHEME}${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for a wrong password or a malformed hash.

    The comparison is constant-time (cryptography's ``Scrypt.verify``).
    """
    if not isinstance(stored, str) or not isinstance(password, str):
        return False
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        n, r, p = (int(x, 10) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not (1 < n <= _MAX_N and 0 < r <= _MAX_R and 0 < p <= _MAX_P) or len(expected) < 16 or not salt:
        return False
    try:
        _scrypt(salt, len(expected), n, r, p).verify(password.encode("utf-8"), expected)
    except InvalidKey:
        return False
    except ValueError:
        # n not a power of two, or parameters the backend refuses: not a hash we wrote.
        return False
    return True


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
