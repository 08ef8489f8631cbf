"""Sign-on secrets are never stored or shown (PROTOCOL.md 4 item 4; issue 14 finding 1).

The one masking function (lems.wire.secrets.mask) by example and by property,
then the running switch over real TLS: the journal, a capture, every error echo,
`lems audit` and the console, for journals written before the masking too.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lems.admin.operations import Admin
from lems.admin.shell import Console
from lems.base.conf import Settings
from lems.tools import audit as audit_tool
from lems.wire import capture as capture_mod
from lems.wire.headers import input_bytes
from lems.wire.secrets import mask, period_in_secret

# -- the function, by example -----------------------------------------------------------------


@pytest.mark.parametrize("text, masked", [
    ("SON.OR9990100.OPR/OP010001.PWD/LemsDemo#2026", "SON.OR9990100.OPR/OP010001.PWD/*"),
    ("SON.OR9990100.OPR/OP010003.PWD/LemsDemo#2026.OTP/123456", "SON.OR9990100.OPR/OP010003.PWD/*.OTP/*"),
    # case folded, the field anywhere, OTP first
    ("son.or9990100.pwd/Se/cr#t.opr/op010001", "son.or9990100.PWD/*.opr/op010001"),
    ("SON.OR9990100.OTP/654321.PWD/x.OPR/OP010003", "SON.OR9990100.OTP/*.PWD/*.OPR/OP010003"),
    # a period in the value: masked to the next sign-on field, not to the next period
    ("SON.OR9990100.OPR/OP010001.PWD/ab.xyz/q.cd", "SON.OR9990100.OPR/OP010001.PWD/*"),
    ("SON.OR9990100.PWD/ab.cd.OTP/12.34", "SON.OR9990100.PWD/*.OTP/*"),
    # spaces around the code, a wrapped line
    ("SON.OR9990100.OPR/OP010001. pwd /secret", "SON.OR9990100.OPR/OP010001.PWD/*"),
    ("SON.OR9990100.OPR/OP010001.\nPWD/secret", "SON.OR9990100.OPR/OP010001.\nPWD/*"),
    # a whole payload: the 18-byte input header of an interface terminal in front
    ("REF0000001op010001SON.OR9990100.OPR/OP010001.PWD/secret", "REF0000001op010001SON.OR9990100.OPR/OP010001.PWD/*"),
    # an old error echo
    (".12. INVALID FIELD X\nORIGINAL MESSAGE\nSON.OR9990100.OPR/OP010001.PWD/secret.X",
     ".12. INVALID FIELD X\nORIGINAL MESSAGE\nSON.OR9990100.OPR/OP010001.PWD/*"),
])
def test_mask_examples(text, masked):
    assert mask(text) == masked
    assert mask(masked) == masked  # idempotent: old rows shown twice stay the same


@pytest.mark.parametrize("text", [
    "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101",
    "AM.OR9990100.OR9990200.TXT RESET THE PWD/ OF OP010001 PLEASE",  # not a field: mid-sentence
    "", None, "HBT",
])
def test_text_without_a_secret_is_unchanged(text):
    assert mask(text) is text


def test_period_in_secret_names_the_field():
    assert period_in_secret("SON.OR9990100.OPR/OP010001.PWD/a.b") == "PWD"
    assert period_in_secret("SON.OR9990100.OPR/OP010001.PWD/ab.OTP/1.2") == "OTP"
    assert period_in_secret("SON.OR9990100.OPR/OP010001.PWD/a/b.OTP/123456") is None


# -- the function, by property ------------------------------------------------------------------

# What a terminal can put in a PWD value: printable ASCII; a period only in the second property.
PASSWORD_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters=".")
passwords = st.text(PASSWORD_CHARS, min_size=1, max_size=64)


def _casing(word: str, upper: list[bool]) -> str:
    return "".join(c.upper() if u else c.lower() for c, u in zip(word, upper + [True] * len(word)))


@st.composite
def sign_ons(draw, password_strategy=passwords):
    """A SON text builder: the same message shape for any password (and OTP)."""
    order = draw(st.permutations(["OPR", "PWD", "OTP"]))
    with_otp = draw(st.booleans())
    header = draw(st.sampled_from(["", "REF0000001        ", "REF0000001op010001"]))
    cases = {w: draw(st.lists(st.booleans(), min_size=3, max_size=3)) for w in ("SON", "OPR", "PWD", "OTP")}

    def build(password: str, otp: str = "123456") -> str:
        fields = []
        for code in order:
            if code == "OTP" and not with_otp:
                continue
            value = {"OPR": "OP010001", "PWD": password, "OTP": otp}[code]
            fields.append(f"{_casing(code, cases[code])}/{value}")
        return header + ".".join([_casing("SON", cases["SON"]), "OR9990100", *fields])

    return build


@settings(max_examples=300, deadline=None)
@given(build=sign_ons(), first=passwords, second=passwords)
def test_masked_sign_on_says_nothing_of_the_password(build, first, second):
    masked = mask(build(first, "111111"))
    # The masked text is the same whatever the password and code: nothing of them is left.
    assert masked == mask(build(second, "222222"))
    # And so a password that is not a piece of the message's own words never appears in it.
    assume(first.upper() not in mask(build("", "")).upper())
    assert first not in masked and first.upper() not in masked.upper()


def _no_field_after_a_period(password: str) -> bool:
    import re

    return re.search(r"\.[ \t\r\n]*(PWD|OTP|OPR)[ \t]*/", password, re.IGNORECASE) is None


@settings(max_examples=200, deadline=None)
@given(build=sign_ons(), data=st.data())
def test_a_period_or_slash_in_the_password_is_masked_too(build, data):
    # As far as the grammar allows: a value with a period cannot be a password, but it is typed.
    typed = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64).filter(
        _no_field_after_a_period)
    first, second = data.draw(typed), data.draw(typed)
    assert mask(build(first)) == mask(build(second))


# -- the running switch, over TLS ---------------------------------------------------------------

SECRETS = ["Wrong#Pass1", "Sec.ret/Piece", "lower#Case9", "Frame#Err0r", "Iface#Sneak1", "Old#Journal7",
           "Echo#Junk42", "TotpFirst#1", "LemsDemo#2026"]


def _all_text(conn: sqlite3.Connection) -> str:
    return "\n".join(row[0] or "" for row in conn.execute("SELECT text FROM journal"))


def test_no_password_in_journal_capture_or_echo(switch_factory, tmp_path):
    path = tmp_path / "capture.jsonl"
    running = switch_factory(capture=path)
    c = running.signed_on("T0100001", "OR9990100", "OP010001")  # the right password, LemsDemo#2026
    echoes = []
    for text in ["SON.OR9990100.OPR/OP010002.PWD/Wrong#Pass1",
                 "SON.OR9990100.OPR/OP010002.PWD/Sec.ret/Piece",
                 "son.or9990100.opr/op010002.pwd/lower#Case9",
                 "SON.OR9990100.OPR/OP010002.PWD/Echo#Junk42.BAD/FIELD",
                 "SON.OR9990100.OPR/OP010003.OTP/123456.PWD/TotpFirst#1"]:
        reply = c.request(text)
        assert reply.cls == "E", (text, reply)
        echoes.append(reply.text)
    # The period: refused naming the field only, not the pieces the codec would have read.
    assert echoes[1].split("\n")[0] == ".12. INVALID FIELD PWD - MUST NOT CONTAIN A PERIOD"
    assert echoes[0].split("\n")[0] == ".20. SIGN-ON REJECTED"
    assert "ORIGINAL MESSAGE\nSON.OR9990100.OPR/OP010002.PWD/*" in echoes[0]
    assert "OTP/*.PWD/*" in echoes[4]
    # A bad frame (a forbidden byte) is journaled with its header and echoed, masked.
    c.send_raw(b"\x02" + input_bytes("BADFRAME01", "", "SON.OR9990100.OPR/OP010002.PWD/Frame#Err0r")
               + b"\x01\x03")
    bad = c.receive()
    assert bad.cls == "E" and bad.text.startswith(".10."), bad
    echoes.append(bad.text)
    # An interface terminal has no sign-on; its refusal echoes the input masked.
    iface = running.client("IF010001").connect()
    iface.banner()
    refused = iface.request("SON.OR9990100.OPR/OP010001.PWD/Iface#Sneak1", opr="op010001")
    assert refused.cls == "E" and "PWD/*" in refused.text
    echoes.append(refused.text)
    journal = running.call(lambda: _all_text(running.switch.store.conn))
    running.stop()
    captured = path.read_text()
    for secret in SECRETS:
        for where, text in (("journal", journal), ("capture", captured), ("echo", "\n".join(echoes))):
            assert secret not in text and secret.upper() not in text, (secret, where)
    assert "PWD/*" in journal and "PWD/*" in captured
    signons = [f["text"] for f in capture_mod.read(path) if f["dir"] == "in" and "PWD" in f["text"].upper()]
    assert signons and all("PWD/*" in t for t in signons)


OLD_ROW = "SON.OR9990100.OPR/OP010001.PWD/Old#Journal7"


def _journal_from_before_the_fix(running) -> None:
    """Rows as the switch wrote them before masking: the password in the in record and the echo."""
    def write():
        journal = running.switch.journal
        running.switch.store.write()
        journal.append("in", terminal="T0100001", ori="OR9990100", mke="SON", ref="OLD0000001", text=OLD_ROW)
        journal.append("out", terminal="T0100001", ori="OR9990100", ref="OLD0000001", cls="E", osn=2,
                       text=".12. INVALID FIELD\nORIGINAL MESSAGE\n" + OLD_ROW)
        running.switch.store.commit()
    running.call(write)


def test_old_journal_verifies_and_shows_masked_everywhere(running, capsys, tmp_path):
    _journal_from_before_the_fix(running)
    store = Settings.load(running.home).store_path
    assert audit_tool.main(["verify"], store) == 0  # the rows are not rewritten: the chain holds
    assert "OK" in capsys.readouterr().out
    assert audit_tool.main(["search", "--full", "--mke", "SON"], store) == 0
    shown = capsys.readouterr().out
    assert "PWD/*" in shown and "Old#Journal7" not in shown
    # Nor can the journal be searched for a password: the filter matches what is shown.
    assert audit_tool.main(["search", "--text", "Old#Journal7"], store) == 0
    assert "OLD0000001" not in capsys.readouterr().out
    out = tmp_path / "export.jsonl"
    assert audit_tool.main(["export", "--out", str(out)], store) == 0
    exported = out.read_text()
    assert "Old#Journal7" not in exported
    assert any(json.loads(line)["text"] == "SON.OR9990100.OPR/OP010001.PWD/*" for line in exported.splitlines())
    console = Console(Admin(running.switch, running.service))
    lines = running.call(lambda: console.execute("audit mke SON")).lines
    assert any("PWD/*" in line for line in lines) and not any("Old#Journal7" in line for line in lines)
    assert running.call(lambda: console.execute("audit text Old#Journal7")).lines == ["0 record(s)"]
    # The rows themselves are as written (what verify vouches for).
    raw = running.call(lambda: _all_text(running.switch.store.conn))
    assert "Old#Journal7" in raw
