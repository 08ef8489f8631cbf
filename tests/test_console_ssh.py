"""The console's SSH transport, asked by OpenSSH's own client (issue 14, findings 8 and 11).

* What the console offers (kex, host key, ciphers, MACs, compression), from the
  server's KEXINIT as ``ssh -vv`` prints it; old algorithms fail to negotiate,
  every current pair works, strict key exchange is on, and re-keying works.
* Port forwarding (``ssh -L``, ``ssh -R``, ``ssh -W``) is refused cleanly: a
  channel-open or request failure, one journal record each, no traceback.
* Connection attempts per address are limited.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
from conftest import in_reactor, serve_process
from twisted.internet import task

from lems.net import sshalgorithms, sshkeys
from lems.net.console_server import AttemptLimiter
from lems.store.journal import search

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client on this machine")


def ssh(home, port, *args, timeout=30, check_output=True):
    key = home / "var" / "console" / sshkeys.ADMIN_KEY
    cmd = ["ssh", "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           "-F", "/dev/null", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def proposal(stderr: str) -> dict[str, list[str]]:
    """The server's KEXINIT lists as ssh -vv prints them after 'peer server KEXINIT proposal'."""
    part = stderr.split("peer server KEXINIT proposal", 1)[1]
    out = {}
    for line in part.splitlines()[1:11]:
        m = re.match(r"debug2: ([a-zA-Z ]+?)(?: ctos| stoc)?: (.*)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).split(",") if m.group(2) else [])
    return out


@needs_ssh
def test_the_console_offers_only_current_algorithms(running):
    port = running.service.console.port
    done = ssh(running.home, port, "-vvv", "-o", "LogLevel=DEBUG3", "admin@127.0.0.1", "locked")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no operator is locked\n"
    offered = proposal(done.stderr)
    assert offered["KEX algorithms"] == ["curve25519-sha256", "curve25519-sha256@libssh.org",
                                         "kex-strict-s-v00@openssh.com", "ext-info-s"]
    assert offered["host key algorithms"] == ["ssh-ed25519"]
    assert offered["ciphers"] == ["aes256-ctr", "aes192-ctr", "aes128-ctr"]
    assert offered["MACs"] == ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com"]
    assert offered["compression"] == ["none"]
    # Both ends announced strict key exchange (the Terrapin counter-measure), so it is used.
    assert "will use strict KEX ordering" in done.stderr


@needs_ssh
@pytest.mark.parametrize("option, what", [
    ("Ciphers=3des-cbc", "cipher"), ("Ciphers=aes128-cbc,aes192-cbc,aes256-cbc", "cipher"),
    ("KexAlgorithms=diffie-hellman-group14-sha1", "key exchange method"),
    ("KexAlgorithms=diffie-hellman-group14-sha256,ecdh-sha2-nistp256", "key exchange method"),
    ("MACs=hmac-md5", "MAC"), ("MACs=hmac-sha1", "MAC"), ("MACs=hmac-sha2-256,hmac-sha2-512", "MAC"),
    ("MACs=hmac-sha1-etm@openssh.com", "MAC"),
    ("HostKeyAlgorithms=rsa-sha2-512,ecdsa-sha2-nistp256", "host key type"),
])
def test_old_algorithms_fail_to_negotiate(running, option, what):
    done = ssh(running.home, running.service.console.port, "-vv", "-o", option, "admin@127.0.0.1", "status")
    assert done.returncode == 255
    assert f"no matching {what} found" in done.stderr, done.stderr
    assert "Authenticated" not in done.stderr


@needs_ssh
def test_every_offered_cipher_and_mac_works_and_rekeying_too(running):
    port = running.service.console.port
    supported = set(subprocess.run(["ssh", "-Q", "cipher"], capture_output=True, text=True).stdout.split())
    for cipher in sshalgorithms.CIPHERS:
        for mac in sshalgorithms.MACS:
            if cipher.decode() not in supported:
                continue
            done = ssh(running.home, port, "-o", f"Ciphers={cipher.decode()}", "-o", f"MACs={mac.decode()}",
                       "-o", "KexAlgorithms=curve25519-sha256@libssh.org", "admin@127.0.0.1", "locked")
            assert (done.returncode, done.stdout) == (0, "no operator is locked\n"), (cipher, mac, done.stderr)
    # Re-keying every 256 bytes: the sequence numbers restart at each NEWKEYS (strict KEX) and the MACs hold.
    done = ssh(running.home, port, "-vv", "-o", "RekeyLimit=256", "admin@127.0.0.1", "help")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("SSH2_MSG_NEWKEYS received") >= 3, done.stderr
    assert "status" in done.stdout


@needs_ssh
def test_compression_is_never_negotiated(running):
    done = ssh(running.home, running.service.console.port, "-vv", "-C", "admin@127.0.0.1", "locked")
    assert done.returncode == 0, done.stderr
    assert "compression: none" in done.stderr and "compression: zlib" not in done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ssh
def test_port_forwarding_is_refused_cleanly_and_journaled_once(home):
    conf = home / "conf" / "lems.toml"
    conf.write_text(conf.read_text().replace("port = 7722", "port = 0"))
    proc, _ = serve_process(home)
    try:
        deadline = time.monotonic() + 30
        while not any("console (SSH)" in line for line in proc.lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(line for line in proc.lines if "console (SSH)" in line)
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))

        # ssh -N -L: the channel opens when something connects to the local end.
        local = free_port()
        key = home / "var" / "console" / sshkeys.ADMIN_KEY
        forward = subprocess.Popen(
            ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-N", "-L", f"127.0.0.1:{local}:127.0.0.1:22", "admin@127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    conn = socket.create_connection(("127.0.0.1", local), timeout=10)
                    break
                except ConnectionRefusedError:
                    assert time.monotonic() < deadline and forward.poll() is None, "ssh -L never listened"
                    time.sleep(0.05)
            with conn:
                assert conn.recv(100) == b""  # ssh closes it: the console refused the channel
        finally:
            forward.terminate()
            try:
                _, err = forward.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # a loaded machine: ssh sometimes sits on its SIGTERM
                forward.kill()
                _, err = forward.communicate(timeout=10)
        assert "open failed: administratively prohibited: the console offers sessions only" in err, err

        remote = ssh(home, port, "-N", "-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{free_port()}:127.0.0.1:22",
                     "admin@127.0.0.1")
        assert remote.returncode == 255 and "remote port forwarding failed" in remote.stderr, remote.stderr
        stdio = ssh(home, port, "-W", "127.0.0.1:22", "admin@127.0.0.1")
        assert stdio.returncode == 255 and "stdio forwarding failed" in stdio.stderr, stdio.stderr
        # The console still works after all that.
        assert ssh(home, port, "admin@127.0.0.1", "locked").stdout == "no operator is locked\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.reader.join(timeout=10)
    output = "".join(proc.lines)
    log = (home / "var" / "log" / "lems.jsonl").read_text()
    for text in (output, log):
        assert "Traceback" not in text and "channel open failed" not in text, text
    import sqlite3

    with sqlite3.connect(home / "var" / "lems.sqlite") as db:
        refused = db.execute("SELECT operator, outcome, text FROM journal WHERE event = 'CONSOLE REQUEST REFUSED' "
                             "ORDER BY seq").fetchall()
    assert [(op, outcome) for op, outcome, _ in refused] == [("LEMS-ADMIN", "REFUSED")] * 3
    texts = [t for _, _, t in refused]
    assert texts[0] == "DIRECT-TCPIP 127.0.0.1:22"
    assert texts[1].startswith("TCPIP-FORWARD 127.0.0.1:")
    assert texts[2] == "DIRECT-TCPIP 127.0.0.1:22"


def test_attempt_limiter_on_the_reactor_clock():
    clock = task.Clock()
    limiter = AttemptLimiter(3, 60, clock.seconds)
    assert [limiter.admit("10.0.0.1") for _ in range(3)] == [(True, False)] * 3
    # The fourth within the minute is refused; only the first refusal of the run is worth a record.
    assert limiter.admit("10.0.0.1") == (False, True)
    assert limiter.admit("10.0.0.1") == (False, False)
    assert limiter.admit("10.0.0.2") == (True, False)  # per address
    clock.advance(59.9)
    assert limiter.admit("10.0.0.1") == (False, False)
    clock.advance(0.2)  # the first three are a minute old now
    assert limiter.admit("10.0.0.1") == (True, False)
    assert limiter.admit("10.0.0.1") == (True, False)
    assert limiter.admit("10.0.0.1") == (True, False)
    assert limiter.admit("10.0.0.1") == (False, True)  # a new run of refusals, journaled again


@needs_ssh
def test_connection_attempts_per_address_are_limited(home, switch_factory):
    conf = home / "conf" / "lems.toml"
    conf.write_text(conf.read_text().replace("attempts_per_address = 10", "attempts_per_address = 3"))
    running = switch_factory()
    port = running.service.console.port
    for _ in range(3):
        assert ssh(running.home, port, "admin@127.0.0.1", "locked").returncode == 0
    refused = [ssh(running.home, port, "admin@127.0.0.1", "locked") for _ in range(2)]
    for done in refused:
        assert done.returncode == 255 and done.stdout == "", done.stderr
        assert re.search(r"closed by remote host|Connection reset|banner exchange", done.stderr), done.stderr
    records = in_reactor(lambda: search(running.switch.store.conn, limit=1000, kind="security"))
    limited = [r for r in records if r.event == "CONSOLE RATE LIMITED"]
    assert [(r.outcome, r.text) for r in limited] == [("REFUSED", "ADDRESS 127.0.0.1 OVER 3 ATTEMPTS IN 60 S")]


def _conch_call(running, transport_class):
    """One console command through lems' own client, with a transport of the test's choosing."""
    from twisted.conch.ssh import keys
    from twisted.internet import defer, protocol, reactor

    from lems.net import console as console_mod

    call = console_mod.ConsoleCall(keys.Key.fromFile(str(running.home / "var" / "console" / sshkeys.ADMIN_KEY)),
                                   command="locked")
    factory = protocol.ClientFactory()

    def build(addr):
        proto = transport_class()
        proto.call, proto.factory = call, factory
        return proto

    def start():
        factory.buildProtocol = build
        factory.clientConnectionFailed = lambda connector, reason: call.finish(reason.value)
        reactor.connectTCP("127.0.0.1", running.service.console.port, factory, timeout=10)
        return defer.succeed(None)

    in_reactor(start)
    try:
        return in_reactor(lambda: call.done)
    except Exception as exc:  # noqa: BLE001 - the refusal is what the test looks at
        return exc


def test_builtin_client_negotiates_etm_and_strict_kex(running):
    from lems.net import console as console_mod

    seen = {}

    class Watching(console_mod._ClientTransport):
        def connectionSecure(self):
            seen.update(mac=self.currentEncryptions.outMACType, cipher=self.currentEncryptions.outCipType,
                        kex=self.kexAlg, strict=self.strict_kex)
            super().connectionSecure()

    assert _conch_call(running, Watching) == (0, "no operator is locked\n")
    assert seen == {"mac": b"hmac-sha2-512-etm@openssh.com", "cipher": b"aes256-ctr", "kex": b"curve25519-sha256",
                    "strict": True}


def test_strict_kex_refuses_a_packet_before_kexinit(running):
    """Terrapin's first move is a message slipped in before the key exchange ends: strict KEX hangs up."""
    from twisted.conch.ssh import transport as conch_transport

    from lems.net import console as console_mod

    told = []

    class Injecting(console_mod._ClientTransport):
        def receiveError(self, reasonCode, description):
            told.append(description)
            super().receiveError(reasonCode, description)

        def sendKexInit(self):
            self.sendPacket(conch_transport.MSG_IGNORE, b"\x00\x00\x00\x00")
            super().sendKexInit()

    class LegacyInjecting(Injecting):
        def sendKexInit(self):
            # A client that does not announce strict KEX may send it: the console still works for it.
            self.supportedKeyExchanges = list(sshalgorithms.KEX_ALGORITHMS)
            conch_transport.SSHClientTransport.sendPacket(self, conch_transport.MSG_IGNORE, b"\x00\x00\x00\x00")
            conch_transport.SSHClientTransport.sendKexInit(self)

    refused = _conch_call(running, Injecting)
    assert isinstance(refused, console_mod.AuthRefused)  # the connection ended before any sign-in
    assert told == [b"strict KEX: KEXINIT was not the first packet"]
    assert _conch_call(running, LegacyInjecting) == (0, "no operator is locked\n")
