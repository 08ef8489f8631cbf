"""What the switch's TLS listener negotiates, asked by real clients (issue 14, finding 9).

A Twisted server made by ``pki.server_context_factory`` runs in a child
interpreter on a free 127.0.0.1 port; it answers every completed handshake with
the version and suite, and stops when its stdin closes (or after a minute,
whatever happens to the test).  The clients are Python's ssl module and, where
it is installed, ``openssl s_client``.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lems.base.clock import SystemClock
from lems.net import pki

REPO = Path(__file__).resolve().parents[1]

_SERVER = textwrap.dedent(r'''
    import sys, threading
    from pathlib import Path
    from twisted.internet import protocol, reactor
    from twisted.internet.interfaces import IHandshakeListener
    from zope.interface import implementer
    from lems.net import pki

    @implementer(IHandshakeListener)
    class Server(protocol.Protocol):
        def handshakeCompleted(self):
            conn = self.transport.getHandle()
            self.transport.write(("OK %s %s\n" % (conn.get_protocol_version_name(),
                                                  conn.get_cipher_name())).encode())
            self.transport.loseConnection()

    port = reactor.listenSSL(0, protocol.Factory.forProtocol(Server),
                             pki.server_context_factory(pki.Pki(Path(sys.argv[1]))), interface="127.0.0.1")
    print(port.getHost().port, flush=True)

    def wait_for_eof():
        sys.stdin.read()
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    reactor.callLater(60, reactor.stop)
    reactor.run()
''')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    switch = pki.Pki(d / "pki", clock=SystemClock())
    switch.create_ca()
    switch.issue_server()
    terminal = switch.issue_terminal("T0100001", "OR9990100")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(switch.directory)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=d)
    try:
        port = int(proc.stdout.readline())
        yield {"port": port, "ca": str(switch.ca_cert_path), "cert": str(terminal.cert_path),
               "key": str(terminal.key_path)}
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def _handshake(server, *, ciphers=None, tls12=False):
    """('OK TLSv1.2 SUITE' line) or raises ssl.SSLError."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=server["ca"])
    ctx.load_cert_chain(server["cert"], server["key"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            return sock.makefile("rb").readline().decode().strip()


@pytest.mark.parametrize("suite", ["AES128-SHA", "AES256-SHA256", "ECDHE-ECDSA-AES128-SHA",
                                   "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-CCM", "AES128-GCM-SHA256",
                                   "DHE-RSA-AES128-GCM-SHA256"])
def test_tls12_refuses_cbc_ccm_and_non_ecdhe(server, suite):
    with pytest.raises(ssl.SSLError):
        _handshake(server, ciphers=suite, tls12=True)


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
                                   "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_tls12_accepts_ecdhe_aead(server, suite):
    assert _handshake(server, ciphers=suite, tls12=True) == f"OK TLSv1.2 {suite}"


def test_tls12_suites_offered_are_exactly_ecdhe_aead(server):
    # Every TLS 1.2 suite this Python's OpenSSL knows, one handshake each.
    known = [c["name"] for c in ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).get_ciphers()
             if c["protocol"] == "TLSv1.2"]
    known += ["AES128-SHA", "AES256-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-CCM"]
    accepted = set()
    for suite in sorted(set(known)):
        try:
            ctx_ok = _handshake(server, ciphers=suite, tls12=True)
        except ssl.SSLError:
            continue
        accepted.add(ctx_ok.split()[-1])
    # The switch's key is ECDSA P-256, so of TLS12_CIPHERS the ECDSA ones are the ones usable.
    assert accepted == {s for s in pki.TLS12_CIPHERS if s.startswith("ECDHE-ECDSA-")}


def test_tls13_as_before(server):
    line = _handshake(server)
    assert line.startswith("OK TLSv1.3 TLS_") and ("GCM" in line or "CHACHA20" in line)


openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def _s_client(server, *args):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{server['port']}", "-servername", "localhost",
           "-CAfile", server["ca"], "-cert", server["cert"], "-key", server["key"], "-verify_return_error", "-ign_eof",
           *args]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return proc.stdout + proc.stderr


@openssl
@pytest.mark.parametrize("args", [["-tls1_2", "-cipher", "AES128-SHA"],
                                  ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"],
                                  ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-CCM"],
                                  ["-tls1_3", "-groups", "X448"], ["-tls1_3", "-groups", "P-521"],
                                  ["-tls1_2", "-groups", "X448"], ["-tls1_2", "-groups", "P-521"]])
def test_openssl_refused(server, args):
    out = _s_client(server, *args)
    assert "OK TLSv" not in out, out
    assert "alert handshake failure" in out or "no cipher match" in out, out


# In TLS 1.2 the groups a client lists also say which curves it can verify, so a
# client must list P-256 (the switch key's curve) beside the group it wants.
@openssl
@pytest.mark.parametrize("args, version, group", [
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], "TLSv1.2", "X25519"),
    (["-tls1_2", "-groups", "X25519:P-256"], "TLSv1.2", "X25519"),
    (["-tls1_2", "-groups", "P-256"], "TLSv1.2", "ECDH, prime256v1"),
    (["-tls1_3", "-groups", "P-256"], "TLSv1.3", "ECDH, prime256v1"),
    (["-tls1_3", "-groups", "P-384"], "TLSv1.3", "ECDH, secp384r1"),
    (["-tls1_3", "-groups", "X25519"], "TLSv1.3", "X25519")])
def test_openssl_accepted(server, args, version, group):
    out = _s_client(server, *args)
    assert f"OK {version} " in out, out
    assert f"Server Temp Key: {group}" in out, out
