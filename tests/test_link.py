"""Issue 2 end to end: real mutual TLS over loopback, certificates from the project's own PKI."""

from __future__ import annotations

import ssl

import pytest

from lems.net import pki as pki_mod
from lems.tools.client import LinkClosed, TerminalClient
from lems.wire.framing import StxFramer

from conftest import PASSWORD

QW_DOE = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"


def test_banner_signon_and_qw_hit(running):
    c = running.client("T0100001").connect()
    banner = c.banner()
    assert banner.cls == "S" and "MONITORED AND RECORDED" in banner.text and banner.ref == ""
    reply = c.sign_on("OR9990100", "OP010001", PASSWORD)
    assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED")
    hit = c.request(QW_DOE)
    assert hit.cls == "R"
    lines = hit.text.split("\n")
    assert "WARNING - SUBJECT MAY BE ARMED AND DANGEROUS" in lines
    assert "MKE/WANTED PERSON" in lines
    assert any(line.startswith("NIC/W") for line in lines)
    assert "IMMED CONFIRM WARRANT AND EXTRADITION WITH ORI" in lines
    assert "ORI IS TEST COUNTY SHERIFFS OFFICE" in lines
    # caution comes before MKE in each block
    assert lines.index("WARNING - SUBJECT MAY BE ARMED AND DANGEROUS") < lines.index("MKE/WANTED PERSON")


def test_qw_no_record_lists_both_sets(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    reply = c.request("QW.OR9990100.NAM/DOE, JANE.DOB/19900101")
    assert reply.cls == "R"
    assert reply.text.split("\n") == ["LEDS RESPONSE", "NO LEDS WANT NAM/DOE, JANE DOB/19900101",
                                      "NCIC RESPONSE", "NO NCIC WANT NAM/DOE, JANE DOB/19900101"]


def test_ref_echoed_and_osn_increments(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    first = c.reply(c.send("HBT", ref="MYREF-0001"))
    second = c.reply(c.send("HBT", ref="MYREF-0002"))
    assert (first.ref, first.text, first.cls) == ("MYREF-0001", "HBT", "R")
    assert second.osn == first.osn + 1
    assert len(first.ts) == 16 and first.ts.isdigit()


def test_handshake_without_certificate_fails(running):
    pki_dir = running.home / "var" / "pki"
    c = TerminalClient("127.0.0.1", running.port, pki_dir / "ca.crt", None, None)
    with pytest.raises((ssl.SSLError, LinkClosed, ConnectionError, OSError)):
        c.connect()
        c.banner(timeout=5)  # TLS 1.3 reports the refusal on first read
    c.close()


def test_foreign_ca_certificate_fails_handshake(running, tmp_path):
    foreign = pki_mod.make_foreign_ca(tmp_path / "foreign")
    issued = foreign.issue_terminal("T0100001", "OR9990100")
    c = running.client("T0100001", cert=issued.cert_path, key=issued.key_path)
    with pytest.raises((ssl.SSLError, LinkClosed, ConnectionError, OSError)):
        c.connect()
        c.banner(timeout=5)
    c.close()


def test_unregistered_certificate_gets_21_and_disconnect(running, tmp_path):
    # Chains to the switch CA but its fingerprint is bound to no terminal.
    ca = pki_mod.Pki(running.home / "var" / "pki")
    issued = ca.issue_terminal("T9999999", "OR9990100", cert_path=tmp_path / "x.crt", key_path=tmp_path / "x.key")
    c = running.client("T0100001", cert=issued.cert_path, key=issued.key_path).connect()
    out = c.receive()
    assert out.cls == "E" and out.text.startswith(".21.") and "NOT REGISTERED" in out.text
    with pytest.raises(LinkClosed):
        c.receive(timeout=5)


def test_reissued_certificate_replaces_binding(running, tmp_path):
    from lems.tools import home as home_mod
    from lems.base.registry import Registry

    old_cert = tmp_path / "old.crt"
    old_key = tmp_path / "old.key"
    paths = pki_mod.Pki(running.home / "var" / "pki").terminal_paths("T0100001")
    old_cert.write_bytes(paths[0].read_bytes())
    old_key.write_bytes(paths[1].read_bytes())
    registry = Registry.load(running.home / "terminals")
    home_mod.issue_terminal(registry, pki_mod.Pki(running.home / "var" / "pki"), registry.terminals["T0100001"])
    running.stop()
    again = type(running)(running.home, running.clock)
    try:
        c = again.client("T0100001", cert=old_cert, key=old_key).connect()
        assert c.receive().text.startswith(".21.")
        fresh = again.client("T0100001").connect()
        assert fresh.banner().cls == "S"
    finally:
        again.stop()


def test_wrong_password_is_20_and_says_nothing_more(running):
    c = running.client("T0100001").connect()
    c.banner()
    wrong = c.sign_on("OR9990100", "OP010001", "WrongPassword1")
    unknown = c.sign_on("OR9990100", "OP999999", PASSWORD)
    assert wrong.cls == unknown.cls == "E"
    assert wrong.text.split("\n")[0] == unknown.text.split("\n")[0] == ".20. SIGN-ON REJECTED"
    assert "WrongPassword1" not in wrong.text and PASSWORD not in unknown.text


def test_before_signon_only_son_hbt(running):
    c = running.client("T0100001").connect()
    c.banner()
    reply = c.request(QW_DOE)
    assert reply.cls == "E" and reply.text.startswith(".20.")
    assert "ORIGINAL MESSAGE" in reply.text and QW_DOE in reply.text
    assert c.request("HBT").text == "HBT"


def test_forbidden_byte_gets_10_and_connection_keeps_working(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    c.send_raw(StxFramer.encode(b"BADREF    " + b" " * 8 + b"QW.OR9990100.NAM/DOE\x00"))
    err = c.receive()
    assert err.cls == "E" and err.text.startswith(".10.")
    assert c.request(QW_DOE).cls == "R"


def test_garbage_and_oversize_then_good_frame(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    c.send_raw(b"noise outside frames")
    assert c.receive().text.startswith(".10.")
    c.send_raw(b"\x02" + b"A" * 20000 + b"\x03")
    assert c.receive().text.startswith(".31.")
    assert c.request(QW_DOE).cls == "R"


def test_short_header_is_10(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    c.send_raw(StxFramer.encode(b"SHORT"))
    assert c.receive().text.startswith(".10. INPUT HEADER")


def test_length_framing_listener(running):
    c = running.client("T0100001", listener="interfaces").connect()
    assert c.banner().cls == "S"
    assert c.sign_on("OR9990100", "OP010001", PASSWORD).cls == "R"
    assert c.request(QW_DOE).cls == "R"


def test_signoff_then_inquiry_needs_signon(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert c.request("SOF.OR9990100").text.startswith("SIGN-OFF ACCEPTED")
    assert c.request(QW_DOE).text.startswith(".20.")


def test_interface_terminal_names_operator_in_header(running):
    c = running.client("IF010001").connect()
    c.banner()
    assert c.request(QW_DOE, opr="OP010001").cls == "R"
    assert c.request(QW_DOE).text.startswith(".20.")          # no operator named
    assert c.request(QW_DOE, opr="OP020001").text.startswith(".20.")  # another agency's operator


def test_second_connection_replaces_first(running):
    first = running.signed_on("T0100001", "OR9990100", "OP010001")
    second = running.client("T0100001").connect()
    assert second.banner().cls == "S"
    notice = first.receive()
    assert notice.cls == "S" and "REPLACED" in notice.text
    with pytest.raises(LinkClosed):
        first.receive(timeout=5)


def test_journal_records_each_frame(running):
    from lems.store import journal

    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    c.request(QW_DOE)
    rows = running.call(lambda: journal.search(running.switch.store.conn, terminal="T0100001", mke="QW"))
    assert rows, "the QW input is journaled"
    assert running.call(lambda: journal.verify(running.switch.store.conn)).ok
