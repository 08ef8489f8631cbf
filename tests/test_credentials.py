"""Operator secrets: scrypt password hashes and RFC 6238 TOTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings, strategies as st

from lems.base import credentials

FAST_N = 2**10  # the format and checks are the same at any cost; keep the suite quick
RFC6238_KEY = b"12345678901234567890"
RFC6238_SECRET = base64.b32encode(RFC6238_KEY).decode()  # "GEZDGNBVGY3TQOJQ..."
DEMO_SECRET = "JBSWY3DPEHPK3PXP"

# RFC 6238 appendix B, the SHA-1 rows (8 digits; a 6-digit code is the last six).
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


# -- passwords -------------------------------------------------------------------------------------

def test_default_hash_format_and_parameters():
    stored = credentials.hash_password("LemsDemo#2026")
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**17), "8", "1")  # OWASP's minimum for scrypt
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert credentials.verify_password("LemsDemo#2026", stored)
    assert not credentials.verify_password("LemsDemo#2027", stored)


def test_hash_is_standard_scrypt():
    # Independent check with hashlib: another implementation reads our hashes.
    stored = credentials.hash_password("p\u00e4ssword", n=FAST_N)
    _, n, r, p, salt, key = stored.split("$")
    expected = hashlib.scrypt("p\u00e4ssword".encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                              dklen=32)
    assert base64.b64decode(key) == expected


def test_salted():
    assert credentials.hash_password("x", n=FAST_N) != credentials.hash_password("x", n=FAST_N)


def test_verify_reads_the_cost_from_the_hash():
    # Hashes made at another cost still verify: the parameters travel with them.
    stored = credentials.hash_password("secret", n=2**12)
    assert stored.startswith("scrypt$4096$8$1$")
    assert credentials.verify_password("secret", stored)


def test_dummy_hash_costs_what_a_real_one_costs():
    scheme, n, r, p, salt, key = credentials.DUMMY_HASH.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", credentials.SCRYPT_N, credentials.SCRYPT_R,
                                                credentials.SCRYPT_P)
    assert len(base64.b64decode(key)) == 32 and not credentials.needs_rehash(credentials.DUMMY_HASH)
    assert credentials.verify_password("no such operator", credentials.DUMMY_HASH) is False


def test_an_old_hash_verifies_and_leaves_its_upgrade_once():
    old = credentials.hash_password("LemsDemo#2026", n=2**14)
    assert credentials.needs_rehash(old)
    assert credentials.take_upgrade(old) is None
    assert not credentials.verify_password("Wrong#2026", old)
    assert credentials.take_upgrade(old) is None  # a wrong password makes nothing
    assert credentials.verify_password("LemsDemo#2026", old)
    new = credentials.take_upgrade(old)
    assert new is not None and new.startswith(f"scrypt${2**17}$8$1$") and not credentials.needs_rehash(new)
    assert credentials.verify_password("LemsDemo#2026", new)
    assert credentials.take_upgrade(old) is None  # taken once
    assert credentials.take_upgrade(new) is None  # a current hash needs none


@pytest.mark.parametrize("password, rule", [
    ("a", "at least 8 characters"),
    ("Short#1", "at least 8 characters"),
    ("x" * 65, "at most 64 characters"),
    ("pass.word#2026", "cannot contain a period"),
    ("Tab\there#2026", "printable ASCII"),
    ("Caf\u00e9#20266", "printable ASCII"),
    ("OP010001#Main", "operator id"),
    ("myop010001pw", "operator id"),
    ("Or9990100!!", "ORI"),
    ("password", "banned list"),
    ("Password2026!", "banned list"),
    ("Qwerty#123", "banned list"),
    ("Letmein!!", "banned list"),
    ("aaaaaaaa", "repeated or sequential"),
    ("12345678", "repeated or sequential"),
    ("87654321", "repeated or sequential"),
    ("abcdefghij", "repeated or sequential"),
    ("Ab1!Ab1!Ab1!", "repeated or sequential"),
])
def test_password_rules_name_the_rule(password, rule):
    problem = credentials.password_problem(password, "OP010001", "OR9990100")
    assert problem is not None and rule in problem, (password, problem)


@pytest.mark.parametrize("password", ["LemsDemo#2026", "Correct horse battery staple", "Secret#1", "7tU!x9#q",
                                      "a/b*c+d=e?f"])
def test_password_rules_accept(password):
    assert credentials.password_problem(password, "OP010001", "OR9990100") is None


def test_home_banned_list_is_used():
    assert credentials.password_problem("Riverside#9", "OP010001", "OR9990100") is None
    assert "banned list" in credentials.password_problem("Riverside#9", "OP010001", "OR9990100",
                                                         banned={"riverside"})


def test_reused_checks_every_previous_hash():
    hashes = [credentials.hash_password(f"Previous#{i}", n=FAST_N) for i in range(3)]
    assert credentials.reused("Previous#2", hashes)
    assert not credentials.reused("Brand#New#1", hashes)


@pytest.mark.parametrize("stored", [
    "",
    "secret",
    "scrypt$16384$8$1$c2FsdA==",                         # too few fields
    "bcrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
    "scrypt$16383$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,   # n not a power of two
    "scrypt$x$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
    "scrypt$16384$8$1$not base64!$" + "A" * 44,
    "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$QUFB",          # key too short to mean anything
    "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,  # cost cap: would need 128 GiB
    "scrypt$16384$8$1$$" + "A" * 44,                            # no salt
])
def test_malformed_hashes_are_false(stored):
    assert credentials.verify_password("secret", stored) is False


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=80))
def test_malformed_hash_is_false_not_exception(junk):
    assert credentials.verify_password("pw", junk) is False


@settings(max_examples=10, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_only_the_same_password_verifies(a, b):
    stored = credentials.hash_password(a, n=FAST_N)
    assert credentials.verify_password(a, stored)
    assert credentials.verify_password(b, stored) is (a == b)


# -- TOTP ------------------------------------------------------------------------------------------

def _reference_totp(key: bytes, at: float, digits: int = 6) -> str:
    """RFC 4226/6238 written out, as an oracle independent of cryptography."""
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@pytest.mark.parametrize("at, code", RFC6238_SHA1)
def test_rfc6238_sha1_vectors(at, code):
    assert credentials.totp_now(RFC6238_SECRET, at, digits=8) == code
    assert credentials.totp_now(RFC6238_SECRET, at) == code[-6:]
    assert credentials.verify_totp(RFC6238_SECRET, code[-6:], at)


def test_demo_secret_without_padding():
    at = 1_800_000_000
    key = base64.b32decode(DEMO_SECRET)
    assert len(key) == 10  # 80 bits: below cryptography's default minimum, must still work
    code = credentials.totp_now(DEMO_SECRET, at)
    assert code == _reference_totp(key, at)
    # Lower case, spaces and explicit padding are the same secret.
    assert credentials.totp_now("jbsw y3dp ehpk 3pxp", at) == code
    assert credentials.totp_now("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA", at) == \
        credentials.totp_now("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====", at)


def test_window_is_one_step_each_way():
    secret, at = DEMO_SECRET, 1_800_000_000  # a step boundary
    code = credentials.totp_now(secret, at)
    # Precondition: no neighbouring step happens to share the code.
    assert code not in {credentials.totp_now(secret, at + 30 * k) for k in (-3, -2, -1, 1, 2, 3)}
    assert credentials.verify_totp(secret, code, at)
    assert credentials.verify_totp(secret, code, at + 29.9)
    assert credentials.verify_totp(secret, code, at + 30)    # the terminal's clock is behind
    assert credentials.verify_totp(secret, code, at + 59.9)
    assert credentials.verify_totp(secret, code, at - 30)    # the terminal's clock is ahead
    assert not credentials.verify_totp(secret, code, at + 60)
    assert not credentials.verify_totp(secret, code, at - 30.1)
    assert not credentials.verify_totp(secret, code, at + 30, window=0)
    assert credentials.verify_totp(secret, code, at + 90, window=3)


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "12 345", "", "１２３４５６", None, 123456])
def test_malformed_codes_are_false(code):
    assert credentials.verify_totp(DEMO_SECRET, code, 1_800_000_000) is False


@pytest.mark.parametrize("secret", ["", "not base32!", "0189", "===="])
def test_malformed_secrets(secret):
    assert credentials.verify_totp(secret, "123456", 1_800_000_000) is False
    with pytest.raises(ValueError):
        credentials.totp_now(secret, 1_800_000_000)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=10, max_size=40), at=st.floats(min_value=60, max_value=2**34))
def test_totp_matches_the_reference(key, at):
    secret = base64.b32encode(key).decode().rstrip("=")
    code = credentials.totp_now(secret, at)
    assert code == _reference_totp(key, at)
    assert credentials.verify_totp(secret, code, at)
    assert credentials.verify_totp(secret, code, at + 30)
    assert credentials.verify_totp(secret, code, at - 30)
