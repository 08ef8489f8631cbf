"""The switch PKI: files, certificate contents, and mutual TLS over real loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from lems.net import pki
from lems.base.clock import FakeClock, SystemClock

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ca(tmp_path, clock) -> pki.Pki:
    p = pki.Pki(tmp_path / "var" / "pki", clock=clock)
    p.create_ca()
    p.issue_server()
    return p


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- files -----------------------------------------------------------------------------------------

def test_layout_and_permissions(ca):
    ca.issue_terminal("T0100001", "OR9990100")
    d = ca.directory
    assert ca.exists()
    assert ca.ca_cert_path == d / "ca.crt"
    assert ca.server_paths() == (d / "server.crt", d / "server.key")
    assert ca.terminal_paths("t0100001") == (d / "terminals" / "T0100001.crt", d / "terminals" / "T0100001.key")
    for key in (d / "ca.key", d / "server.key", d / "terminals" / "T0100001.key"):
        assert _mode(key) & 0o077 == 0, key
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PEM, unencrypted
    for directory in (d, d / "terminals"):
        assert _mode(directory) & 0o077 == 0, directory
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in d.rglob("*") if p.name.startswith(".")) == []


def test_keys_are_private_from_creation_never_chmodded(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("permissions must be set when the file is created")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    p = pki.Pki(tmp_path / "pki", clock=FakeClock())
    p.create_ca()
    p.issue_server()
    p.issue_terminal("T1", "OR9990000")


def test_exists_needs_ca_and_switch_certificate(tmp_path):
    p = pki.Pki(tmp_path / "pki", clock=FakeClock())
    assert not p.exists()
    p.create_ca()
    assert not p.exists()
    p.issue_server()
    assert p.exists()


def test_an_existing_ca_is_not_replaced_by_accident(ca):
    before = ca.ca_cert_path.read_bytes()
    with pytest.raises(FileExistsError):
        ca.create_ca()
    assert ca.ca_cert_path.read_bytes() == before
    ca.create_ca(replace=True)
    assert ca.ca_cert_path.read_bytes() != before


@pytest.mark.parametrize("bad", ["../T1", "T1/X", "", "T 1", ".T1"])
def test_terminal_ids_cannot_escape_the_directory(ca, bad):
    with pytest.raises(ValueError):
        ca.terminal_paths(bad)


def test_issuing_needs_a_ca(tmp_path):
    with pytest.raises(pki.PkiError):
        pki.Pki(tmp_path / "none", clock=FakeClock()).issue_terminal("T1", "OR9990000")


# -- certificate contents --------------------------------------------------------------------------

def test_ca_certificate(ca, clock):
    cert, key = ca.load_ca()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "LEMS EMULATOR TEST CA"
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.not_valid_before_utc <= clock.now()
    # [pki] ca_days: 5 years by default.
    assert cert.not_valid_after_utc - clock.now() == dt.timedelta(days=1826)
    assert key.public_key() == cert.public_key()
    cert.verify_directly_issued_by(cert)


def test_server_certificate_verifies_for_localhost_and_loopback(ca, clock):
    cert = x509.load_pem_x509_certificate(ca.server_paths()[0].read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    assert cert.not_valid_after_utc - clock.now() == dt.timedelta(days=365)  # [pki] switch_days
    # RFC 5280 path validation as a TLS client does it (strict about AKI, key usage, SAN).
    store = Store([ca.load_ca()[0]])
    builder = PolicyBuilder().store(store).time(clock.now())
    builder.build_server_verifier(x509.DNSName("localhost")).verify(cert, [])
    builder.build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(cert, [])
    with pytest.raises(VerificationError):
        builder.build_server_verifier(x509.DNSName("example.org")).verify(cert, [])


def test_terminal_certificate(ca, clock):
    issued = ca.issue_terminal("T0100001", "OR9990100")
    cert = x509.load_pem_x509_certificate(issued.cert_path.read_bytes())
    assert cert == issued.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "T0100001"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "OR9990100"
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:lems:terminal:T0100001"]
    assert cert.not_valid_after_utc - clock.now() == dt.timedelta(days=365)  # [pki] terminal_days
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), None)
    assert key.public_key() == cert.public_key()
    verifier = PolicyBuilder().store(Store([ca.load_ca()[0]])).time(clock.now()).build_client_verifier()
    verifier.verify(cert, [])
    # ...and not after it expires.
    late = PolicyBuilder().store(Store([ca.load_ca()[0]])).time(clock.now() + dt.timedelta(days=366))
    with pytest.raises(VerificationError):
        late.build_client_verifier().verify(cert, [])


def test_expired_certificate_on_request(ca, clock):
    now = clock.now()
    issued = ca.issue_terminal("T0100001", "OR9990100", not_before=now - dt.timedelta(days=800),
                               not_after=now - dt.timedelta(days=1))
    assert issued.certificate.not_valid_after_utc == now - dt.timedelta(days=1)
    with pytest.raises(ValueError):
        ca.issue_terminal("T0100001", "OR9990100", not_before=now, not_after=now)


def test_foreign_ca_does_not_chain(ca, tmp_path, clock):
    foreign = pki.make_foreign_ca(tmp_path / "foreign", clock=clock)
    impostor = foreign.issue_terminal("T0100001", "OR9990100")
    verifier = PolicyBuilder().store(Store([ca.load_ca()[0]])).time(clock.now()).build_client_verifier()
    with pytest.raises(VerificationError):
        verifier.verify(impostor.certificate, [])


def test_reissue_changes_the_fingerprint(ca):
    first = ca.issue_terminal("T0100001", "OR9990100")
    second = ca.issue_terminal("T0100001", "OR9990100")
    assert first.fingerprint != second.fingerprint
    assert pki.fingerprint_file(second.cert_path) == second.fingerprint


# -- fingerprints ----------------------------------------------------------------------------------

def test_fingerprint_is_sha256_of_der_in_every_form(ca):
    issued = ca.issue_terminal("T0100001", "OR9990100")
    pem = issued.cert_path.read_bytes()
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    expected = hashlib.sha256(der).hexdigest()
    assert issued.fingerprint == expected
    assert len(expected) == 64 and expected == expected.lower()
    assert pki.fingerprint(issued.certificate) == expected
    assert pki.fingerprint(der) == expected
    assert pki.fingerprint(pem) == expected
    assert pki.fingerprint_file(issued.cert_path) == expected
    from OpenSSL import crypto
    assert pki.fingerprint(crypto.X509.from_cryptography(issued.certificate)) == expected


def test_peer_fingerprint_without_tls_or_certificate(ca):
    class Plain:
        pass

    class NoCert:
        def getPeerCertificate(self):
            return None

    class Closed:
        def getPeerCertificate(self):
            raise AttributeError("no TLS connection")

    class WithCert:
        def __init__(self, cert):
            from OpenSSL import crypto
            self.cert = crypto.X509.from_cryptography(cert)

        def getPeerCertificate(self):
            return self.cert

    issued = ca.issue_terminal("T0100001", "OR9990100")
    assert pki.peer_fingerprint(Plain()) is None
    assert pki.peer_fingerprint(NoCert()) is None
    assert pki.peer_fingerprint(Closed()) is None
    assert pki.peer_fingerprint(WithCert(issued.certificate)) == issued.fingerprint


def test_unknown_minimum_tls_version(ca):
    with pytest.raises(ValueError):
        pki.server_context_factory(ca, min_tls="1.1")


def test_lifetimes_come_from_the_settings(tmp_path, clock):
    from lems.base.conf import ConfError, PkiLifetimes, Settings

    p = pki.Pki(tmp_path / "pki", clock=clock, lifetimes=PkiLifetimes(ca_days=100, switch_days=30, terminal_days=7))
    ca_cert = p.create_ca()
    server = p.issue_server()
    terminal = p.issue_terminal("T0100001", "OR9990100")
    assert ca_cert.not_valid_after_utc - clock.now() == dt.timedelta(days=100)
    assert server.certificate.not_valid_after_utc - clock.now() == dt.timedelta(days=30)
    assert terminal.certificate.not_valid_after_utc - clock.now() == dt.timedelta(days=7)
    # Never past the CA, whatever is asked for.
    late = p.issue_terminal("T0100002", "OR9990100", not_after=clock.now() + dt.timedelta(days=500))
    assert late.certificate.not_valid_after_utc == ca_cert.not_valid_after_utc

    base = {"listener": [{"name": "t", "port": 0}]}
    assert Settings.from_dict(tmp_path, base).pki == PkiLifetimes(1826, 365, 365)
    assert Settings.from_dict(tmp_path, {**base, "pki": {"switch_days": 90}}).pki.switch_days == 90
    for bad in ({"terminal_days": 0}, {"ca_days": 30}, {"certificate_days": 1}):
        with pytest.raises(ConfError):
            Settings.from_dict(tmp_path, {**base, "pki": bad})


def test_renew_server_keeps_the_names_with_a_new_key(tmp_path, clock):
    p = pki.Pki(tmp_path / "pki", clock=clock)
    p.create_ca()
    first = p.issue_server(["switch.example.test", "localhost", "10.0.0.5"])
    clock.advance(300 * 86400)
    renewed = p.renew_server()
    assert renewed.fingerprint != first.fingerprint
    assert renewed.certificate.public_key() != first.certificate.public_key()
    assert p.server_names() == ["switch.example.test", "localhost", "10.0.0.5"]
    assert renewed.certificate.not_valid_after_utc - clock.now() == dt.timedelta(days=365)
    with pytest.raises(pki.PkiError):
        pki.Pki(tmp_path / "empty", clock=clock).renew_server()


# -- mutual TLS over loopback ----------------------------------------------------------------------

# Runs in a fresh interpreter with its own reactor: a Twisted server made by
# server_context_factory on 127.0.0.1, and one client per case, one after the
# other.  The server answers every completed handshake with the peer's
# fingerprint; a case succeeded when its client read that line back.
_DRIVER = textwrap.dedent(r'''
    import json, socket, ssl, sys
    from pathlib import Path
    from twisted.internet import defer, protocol, task, threads
    from twisted.internet.interfaces import IHandshakeListener
    from zope.interface import implementer
    from lems.net import pki

    cfg = json.loads(sys.argv[1])
    switch = pki.Pki(Path(cfg["pki"]))

    @implementer(IHandshakeListener)
    class Server(protocol.Protocol):
        def handshakeCompleted(self):
            fp = pki.peer_fingerprint(self.transport)
            self.factory.seen.append(fp)
            self.transport.write(("FP %s\n" % fp).encode())

    @implementer(IHandshakeListener)
    class Client(protocol.Protocol):
        def connectionMade(self):
            self.data, self.version = b"", None
        def handshakeCompleted(self):
            self.version = self.transport.getHandle().get_protocol_version_name()
        def dataReceived(self, data):
            self.data += data
            if b"\n" in self.data:
                self.transport.loseConnection()
        def connectionLost(self, reason):
            self.factory.done.callback({"reply": self.data.decode(), "version": self.version,
                                        "error": None if self.data else reason.getErrorMessage()})

    def stdlib_client(port, case):
        # What lems.tools.client does (blocking sockets and ssl), with Python 3.13's
        # strict X.509 checks switched on so certificates stay acceptable there.
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=case["ca"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
        ctx.load_cert_chain(case["cert"], case["key"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=case["hostname"]) as sock:
                line = sock.makefile("rb").readline()
                return {"reply": line.decode(), "version": sock.version(), "error": None}

    async def run(reactor):
        factory = protocol.Factory.forProtocol(Server)
        factory.seen = []
        port = reactor.listenSSL(0, factory, pki.server_context_factory(switch), interface="127.0.0.1")
        strict = reactor.listenSSL(0, factory, pki.server_context_factory(switch, min_tls="1.3"),
                                   interface="127.0.0.1")
        results = {}
        for case in cfg["cases"]:
            target = strict if case.get("strict") else port
            if case.get("stdlib"):
                results[case["name"]] = await threads.deferToThread(stdlib_client, port.getHost().port, case)
                continue
            if case.get("tls12"):
                # A client that cannot do TLS 1.3 (built by hand: the project's helpers never cap).
                from twisted.internet import ssl as tssl
                cert = case["cert"] and tssl.PrivateCertificate.loadPEM(
                    Path(case["cert"]).read_bytes() + Path(case["key"]).read_bytes())
                options = tssl.optionsForClientTLS(
                    case["hostname"], trustRoot=tssl.Certificate.loadPEM(Path(case["ca"]).read_bytes()),
                    clientCertificate=cert or None,
                    extraCertificateOptions={"lowerMaximumSecurityTo": tssl.TLSVersion.TLSv1_2})
            else:
                options = pki.client_context_from_paths(case["ca"], case["cert"], case["key"],
                                                        hostname=case["hostname"])
            client = protocol.ClientFactory.forProtocol(Client)
            client.done = defer.Deferred()
            client.done.addTimeout(10, reactor)
            reactor.connectSSL("127.0.0.1", target.getHost().port, client, options)
            results[case["name"]] = await client.done
        await port.stopListening()
        await strict.stopListening()
        print(json.dumps({"results": results, "server_saw": factory.seen}))

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
''')


def test_mutual_tls_over_loopback(tmp_path):
    # Real time: the TLS stacks check validity against the system clock.
    clock = SystemClock()
    switch = pki.Pki(tmp_path / "pki", clock=clock)
    switch.create_ca()
    switch.issue_server()
    good = switch.issue_terminal("T0100001", "OR9990100")
    now = clock.now()
    expired = switch.issue_terminal("T0100002", "OR9990100", not_before=now - dt.timedelta(days=800),
                                    not_after=now - dt.timedelta(days=1))
    foreign = pki.make_foreign_ca(tmp_path / "foreign", clock=clock)
    impostor = foreign.issue_terminal("T0100001", "OR9990100")
    ca = str(switch.ca_cert_path)
    server_crt, server_key = (str(p) for p in switch.server_paths())

    def case(name, cert=None, key=None, hostname="localhost", trust=ca, **extra):
        return {"name": name, "ca": trust, "cert": cert and str(cert), "key": key and str(key),
                "hostname": hostname, **extra}

    cases = [
        case("registered", good.cert_path, good.key_path),
        case("registered by address", good.cert_path, good.key_path, hostname="127.0.0.1"),
        case("stdlib client", good.cert_path, good.key_path, stdlib=True),
        case("no client certificate"),
        case("foreign CA", impostor.cert_path, impostor.key_path),
        case("expired", expired.cert_path, expired.key_path),
        # Chains to the CA but is a server certificate: not valid for client authentication.
        case("server certificate as client", server_crt, server_key),
        # The client side checks the switch too: wrong name, wrong trust anchor.
        case("wrong server name", good.cert_path, good.key_path, hostname="switch.example.org"),
        case("client trusts another CA", good.cert_path, good.key_path, trust=str(foreign.ca_cert_path)),
        # TLS 1.2 is accepted (and its handshake, unlike 1.3's, fails before the client thinks it is in).
        case("registered over TLS 1.2", good.cert_path, good.key_path, tls12=True),
        case("no client certificate over TLS 1.2", tls12=True),
        case("foreign CA over TLS 1.2", impostor.cert_path, impostor.key_path, tls12=True),
        # A listener whose floor is raised to 1.3 refuses a 1.2-only client.
        case("TLS 1.2 below a 1.3 floor", good.cert_path, good.key_path, tls12=True, strict=True),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps({"pki": str(switch.directory), "cases": cases})],
                          capture_output=True, text=True, timeout=90, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    results = out["results"]

    accepted = {"registered": "TLSv1.3", "registered by address": "TLSv1.3", "stdlib client": "TLSv1.3",
                "registered over TLS 1.2": "TLSv1.2"}
    for name, version in accepted.items():
        assert results[name]["reply"] == f"FP {good.fingerprint}\n", (name, results[name])
        assert results[name]["version"] == version, (name, results[name])  # 1.3 whenever offered
    # Each refusal for its own reason (OpenSSL's alert texts), not an incidental one.
    refused = {
        "no client certificate": "certificate required",
        "foreign CA": "unknown ca",
        "expired": "certificate expired",
        "server certificate as client": "unsupported certificate",
        "wrong server name": "mismatch",
        "client trusts another CA": "certificate verify failed",
        "no client certificate over TLS 1.2": "handshake failure",
        "foreign CA over TLS 1.2": "unknown ca",
        "TLS 1.2 below a 1.3 floor": "protocol version",
    }
    for name, reason in refused.items():
        assert results[name]["reply"] == "", (name, results[name])
        assert reason in (results[name]["error"] or "").lower(), (name, results[name])
    # The server completed exactly the good handshakes, each identifying the terminal by fingerprint.
    assert out["server_saw"] == [good.fingerprint] * len(accepted)
