"""The SSH algorithms the console offers, on both ends (server and lems' own client).

Twisted Conch's defaults include 3des-cbc and the other CBC ciphers,
hmac-md5, hmac-sha1, MACs over the plaintext (encrypt-and-MAC),
diffie-hellman-group14-sha1 and zlib before authentication.  The console
offers only:

* key exchange: curve25519-sha256, curve25519-sha256@libssh.org (plus the
  ext-info-s/-c marker Conch adds, and the strict key exchange marker below);
* host key: ssh-ed25519 (the console's key is Ed25519, see lems.net.sshkeys);
* ciphers: aes256-ctr, aes192-ctr, aes128-ctr.  Conch implements neither
  AES-GCM nor ChaCha20-Poly1305, so CTR it is, and always with
* MACs: hmac-sha2-512-etm@openssh.com, hmac-sha2-256-etm@openssh.com.  Conch
  has only MAC-over-plaintext; encrypt-then-MAC (OpenSSH's PROTOCOL, section
  1.6: the length in clear, the MAC over sequence number, length and
  ciphertext, checked before anything is decrypted) is done here, in
  ``sendPacket`` and ``getPacket``;
* compression: none.

Strict key exchange (OpenSSH's ``kex-strict-s-v00@openssh.com``, the
counter-measure to the Terrapin prefix truncation, CVE-2023-48795) is done here
too: when both ends announce it, the initial key exchange admits no message
outside it, KEXINIT must be the first packet, and the sequence numbers restart
at 0 with every NEWKEYS.
"""

from __future__ import annotations

import struct
from hashlib import sha256, sha512
from typing import Any

from twisted.conch.ssh import common, transport
from twisted.conch.ssh.transport import DISCONNECT_KEY_EXCHANGE_FAILED, DISCONNECT_MAC_ERROR, \
    DISCONNECT_PROTOCOL_ERROR, MSG_DISCONNECT, MSG_KEXINIT, MSG_NEWKEYS
from twisted.python import randbytes

KEX_ALGORITHMS = (b"curve25519-sha256", b"curve25519-sha256@libssh.org")
HOST_KEY_ALGORITHMS = (b"ssh-ed25519",)
CIPHERS = (b"aes256-ctr", b"aes192-ctr", b"aes128-ctr")
MACS = (b"hmac-sha2-512-etm@openssh.com", b"hmac-sha2-256-etm@openssh.com")
COMPRESSIONS = (b"none",)

STRICT_KEX_SERVER = b"kex-strict-s-v00@openssh.com"
STRICT_KEX_CLIENT = b"kex-strict-c-v00@openssh.com"

_MAX_PACKET = 1048576  # Conch's own bound


class EtmCiphers(transport.SSHCiphers):
    """Conch's cipher state, knowing the -etm MAC names (the HMAC is the same; where it is computed differs)."""

    macMap = {**transport.SSHCiphers.macMap,
              b"hmac-sha2-512-etm@openssh.com": sha512,
              b"hmac-sha2-256-etm@openssh.com": sha256}

    @property
    def out_etm(self) -> bool:
        return self.outMACType.endswith(b"-etm@openssh.com")

    @property
    def in_etm(self) -> bool:
        return self.inMACType.endswith(b"-etm@openssh.com")


class ModernAlgorithms:
    """Mixed in before ``SSHServerTransport`` or ``SSHClientTransport``."""

    supportedKeyExchanges = list(KEX_ALGORITHMS)
    supportedPublicKeys = list(HOST_KEY_ALGORITHMS)
    supportedCiphers = list(CIPHERS)
    supportedMACs = list(MACS)
    supportedCompressions = list(COMPRESSIONS)

    strict_kex = False
    _strict_announced = False
    _kexinit_seen = False
    _first_newkeys_seen = False

    # -- the offer ----------------------------------------------------------------------------------

    def sendKexInit(self) -> None:
        if self.sessionID is not None:
            return super().sendKexInit()  # a re-key: the strict marker belongs to the first KEXINIT only
        offered = self.supportedKeyExchanges
        self.supportedKeyExchanges = [*offered, STRICT_KEX_CLIENT if self.isClient else STRICT_KEX_SERVER]
        try:
            super().sendKexInit()
            self._strict_announced = True
        finally:
            # Only announced: never a key exchange the peer could pick.
            self.supportedKeyExchanges = offered

    def ssh_KEXINIT(self, packet: bytes) -> Any:
        first = not self._kexinit_seen
        self._kexinit_seen = True
        if first:
            peer_kex = common.getNS(packet[16:])[0].split(b",")
            # Strict when both ends announced it.
            self.strict_kex = self._strict_announced and (
                STRICT_KEX_SERVER if self.isClient else STRICT_KEX_CLIENT) in peer_kex
            # getPacket has counted the KEXINIT already: strict mode wants it to have been packet 0.
            if self.strict_kex and self.incomingPacketSequence != 1:
                self.sendDisconnect(DISCONNECT_KEY_EXCHANGE_FAILED, b"strict KEX: KEXINIT was not the first packet")
                return None
        result = super().ssh_KEXINIT(packet)
        n = getattr(self, "nextEncryptions", None)
        if type(n) is transport.SSHCiphers:
            self.nextEncryptions = EtmCiphers(n.outCipType, n.inCipType, n.outMACType, n.inMACType)
        return result

    # -- strict key exchange ------------------------------------------------------------------------

    def dispatchMessage(self, messageNum: int, payload: bytes) -> None:
        if self.strict_kex:
            # Initial key exchange: only its own messages (RFC 4253 7, 8; 30-49 are the method's).
            in_kex = messageNum in (MSG_DISCONNECT, MSG_KEXINIT, MSG_NEWKEYS) or 30 <= messageNum <= 49
            if not self._first_newkeys_seen and not in_kex:
                self.sendDisconnect(DISCONNECT_PROTOCOL_ERROR,
                                    b"strict KEX: unexpected message %d during key exchange" % messageNum)
                return
            if messageNum == MSG_NEWKEYS:
                self.incomingPacketSequence = 0
        if messageNum == MSG_NEWKEYS:
            self._first_newkeys_seen = True
        super().dispatchMessage(messageNum, payload)

    # -- packets: encrypt-then-MAC ------------------------------------------------------------------

    def sendPacket(self, messageType: int, payload: bytes) -> None:
        enc = self.currentEncryptions
        if not getattr(enc, "out_etm", False):
            super().sendPacket(messageType, payload)
        else:
            self._send_etm(enc, messageType, payload)
        if messageType == MSG_NEWKEYS and self.strict_kex:
            self.outgoingPacketSequence = 0

    def _send_etm(self, enc: EtmCiphers, messageType: int, payload: bytes) -> None:
        if self._keyExchangeState != self._KEY_EXCHANGE_NONE and not self._allowedKeyExchangeMessageType(
                messageType):
            self._blockedByKeyExchange.append((messageType, payload))
            return
        payload = bytes((messageType,)) + payload  # compression is always none
        bs = enc.encBlockSize
        # The length goes in clear: padding aligns padding length + payload + padding.
        pad = bs - ((1 + len(payload)) % bs)
        if pad < 4:
            pad += bs
        body = bytes((pad,)) + payload + randbytes.secureRandom(pad)
        head = struct.pack("!L", len(body))
        sealed = enc.encrypt(body)
        self.transport.write(head + sealed + enc.makeMAC(self.outgoingPacketSequence, head + sealed))
        self.outgoingPacketSequence += 1

    def getPacket(self) -> Any:
        enc = self.currentEncryptions
        if not getattr(enc, "in_etm", False):
            return super().getPacket()
        if len(self.buf) < 4:
            return None
        length = struct.unpack("!L", self.buf[:4])[0]
        bs, ms = enc.decBlockSize, enc.verifyDigestSize
        if length > _MAX_PACKET or length < bs or length % bs:
            self.sendDisconnect(DISCONNECT_PROTOCOL_ERROR, b"bad packet length %d" % length)
            return None
        if len(self.buf) < 4 + length + ms:
            return None
        sealed, mac = self.buf[:4 + length], self.buf[4 + length:4 + length + ms]
        # The MAC first: nothing unauthenticated is decrypted.
        if not enc.verify(self.incomingPacketSequence, sealed, mac):
            self.sendDisconnect(DISCONNECT_MAC_ERROR, b"bad MAC")
            return None
        self.buf = self.buf[4 + length + ms:]
        body = enc.decrypt(sealed[4:])
        pad = body[0]
        if pad < 4 or pad >= len(body):
            self.sendDisconnect(DISCONNECT_PROTOCOL_ERROR, b"bad padding length")
            return None
        self.incomingPacketSequence += 1
        return body[1:-pad]
