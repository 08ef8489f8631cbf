"""The switch's own PKI: a CA, the switch certificate and terminal certificates.

Everything is made with ``cryptography`` (no OpenSSL command line), so a fresh
home gets working mutual TLS without a manual step.  Layout under a home's
``var/pki/``::

    ca.crt  ca.key  server.crt  server.key
    terminals/<TERMINAL>.crt  terminals/<TERMINAL>.key

All PEM.  Private keys are unencrypted (the switch and the client tools start
unattended), so they are created with mode 0600 (given to os.open, never a
chmod afterwards) inside 0700 directories.  Every file is written to a
temporary name and renamed into place, so a crash never leaves a half-written
key or certificate behind.

Keys are ECDSA P-256: strong enough, and generated in well under a
millisecond, which keeps ``lems init`` and the test suite fast.

The switch binds a terminal to the SHA-256 fingerprint of its certificate's
DER encoding (``fingerprint``), never to the names inside it; the subject
(CN = terminal id, O = ORI) is there for people reading logs and certificates.

The TLS helpers at the end turn these files into Twisted context factories:
the server side requires a client certificate that chains to the CA, the client
side checks the switch certificate against the CA and the name ``localhost``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lems.base.clock import SystemClock
from lems.base.conf import PkiLifetimes

CA_COMMON_NAME = "LEMS EMULATOR TEST CA"
FOREIGN_CA_COMMON_NAME = "FOREIGN TEST CA"
ORGANIZATION = "LEMS EMULATOR"

# Lifetimes come from the home's [pki] settings (lems.base.conf.PkiLifetimes):
# by default the CA 5 years, the switch and terminal certificates 1 year.
# Certificates start a little in the past so that a verifier whose clock runs
# slightly behind the issuer's does not reject a certificate issued just now.
BACKDATE = dt.timedelta(minutes=5)

DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")

# Terminal ids become file names: keep them to a safe, path-free alphabet.
_TERMINAL_ID = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,63}")

PrivateKey = ec.EllipticCurvePrivateKey


class PkiError(Exception):
    """The PKI directory is missing something or holds something unusable."""


@attrs.frozen
class IssuedCert:
    """A certificate just issued and written, and where it went."""

    cert_path: Path
    key_path: Path
    fingerprint: str
    certificate: x509.Certificate = attrs.field(eq=False, repr=False)


# -- fingerprints --------------------------------------------------------------------------------

def fingerprint(cert: Any) -> str:
    """SHA-256 of the certificate's DER encoding, lowercase hex.

    Accepts a ``cryptography`` certificate, DER bytes, PEM bytes (the first
    certificate in them) or a pyOpenSSL ``X509``.
    """
    if isinstance(cert, x509.Certificate):
        parsed = cert
    elif isinstance(cert, (bytes, bytearray, memoryview)):
        data = bytes(cert)
        # Parse DER too rather than hash it blindly: bytes that are not a certificate are a bug.
        if data.lstrip().startswith(b"-----BEGIN"):
            parsed = x509.load_pem_x509_certificate(data)
        else:
            parsed = x509.load_der_x509_certificate(data)
    elif hasattr(cert, "to_cryptography"):
        parsed = cert.to_cryptography()
    else:
        raise TypeError(f"not a certificate: {type(cert).__name__}")
    return hashlib.sha256(parsed.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_file(path: Union[str, Path]) -> str:
    """Fingerprint of the (first) certificate in a PEM or DER file."""
    return fingerprint(Path(path).read_bytes())


def peer_fingerprint(transport: Any) -> Optional[str]:
    """The fingerprint of the certificate a TLS peer presented, or None.

    ``transport`` is the Twisted TLS transport of a connection whose handshake
    has completed (``getPeerCertificate`` gives a pyOpenSSL X509).  A transport
    without TLS, or a peer without a certificate, gives None.
    """
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    try:
        cert = get()
    except Exception:
        # The TLS connection is not up (yet, or any more): nothing to identify.
        return None
    if cert is None:
        return None
    return fingerprint(cert)


# -- files ---------------------------------------------------------------------------------------

def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file created with ``mode``.

    The mode goes to os.open, so a private key is never readable by others,
    not even between creation and rename.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _make_dir(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    # A CA only signs certificates (and CRLs); a TLS endpoint only signs handshakes.
    return x509.KeyUsage(digital_signature=signing, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not signing,
                         crl_sign=not signing, encipher_only=False, decipher_only=False)


# -- the PKI -------------------------------------------------------------------------------------

class Pki:
    """A CA and the certificates it issued, in one directory (a home's ``var/pki``)."""

    def __init__(self, directory: Union[str, Path], clock: Any = None,
                 lifetimes: Optional[PkiLifetimes] = None) -> None:
        self.directory = Path(directory)
        self.clock = clock or SystemClock()
        self.lifetimes = lifetimes or PkiLifetimes()

    # -- paths ----------------------------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def terminals_dir(self) -> Path:
        return self.directory / "terminals"

    def server_paths(self) -> tuple[Path, Path]:
        """(certificate, key) of the switch."""
        return self.directory / "server.crt", self.directory / "server.key"

    def terminal_paths(self, terminal_id: str) -> tuple[Path, Path]:
        """(certificate, key) of a terminal; ids are upper case, as in the registry."""
        tid = terminal_id.upper()
        if not _TERMINAL_ID.fullmatch(tid):
            raise ValueError(f"terminal id {terminal_id!r} cannot name a certificate file")
        return self.terminals_dir / f"{tid}.crt", self.terminals_dir / f"{tid}.key"

    def exists(self) -> bool:
        """True when the switch can serve: the CA and the switch's certificate and key are present."""
        return all(p.is_file() for p in (self.ca_cert_path, self.ca_key_path, *self.server_paths()))

    # -- the CA ---------------------------------------------------------------------------------

    def create_ca(self, common_name: str = CA_COMMON_NAME, clock: Any = None, *,
                  replace: bool = False) -> x509.Certificate:
        """Make a new self-signed CA (ECDSA P-256), valid ``lifetimes.ca_days``.

        Refuses to overwrite an existing CA unless ``replace``: a new CA
        orphans every certificate the old one issued.
        """
        if self.ca_cert_path.exists() and not replace:
            raise FileExistsError(f"{self.ca_cert_path}: a CA already exists here")
        now = (clock or self.clock).now()
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=self.lifetimes.ca_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        _make_dir(self.directory)
        # Key first: a certificate on disk always has its key beside it.
        _write_atomic(self.ca_key_path, _key_pem(key), 0o600)
        _write_atomic(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert

    def load_ca(self) -> tuple[x509.Certificate, PrivateKey]:
        """The CA certificate and its private key."""
        try:
            cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
        except FileNotFoundError as exc:
            raise PkiError(f"{exc.filename}: no CA here (`lems init DIR` makes a new home)") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.ca_key_path}: not an ECDSA key")
        return cert, key

    # -- issuing --------------------------------------------------------------------------------

    def _issue(self, subject: x509.Name, usage: x509.ObjectIdentifier, names: Iterable[x509.GeneralName],
               cert_path: Path, key_path: Path, not_before: Optional[dt.datetime],
               not_after: Optional[dt.datetime], days: int) -> IssuedCert:
        ca_cert, ca_key = self.load_ca()
        now = self.clock.now()
        start = not_before if not_before is not None else now - BACKDATE
        end = not_after if not_after is not None else now + dt.timedelta(days=days)
        # Never past the CA: a verifier would refuse the certificate's last stretch anyway.
        end = min(end, ca_cert.not_valid_after_utc)
        if end <= start:
            raise ValueError(f"certificate would end ({end}) before it starts ({start})")
        key = _new_key()
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
        )
        names = list(names)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _make_dir(cert_path.parent)
        _write_atomic(key_path, _key_pem(key), 0o600)
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return IssuedCert(cert_path, key_path, fingerprint(cert), cert)

    def issue_server(self, names: Iterable[str] = DEFAULT_SERVER_NAMES) -> IssuedCert:
        """The switch's certificate (serverAuth), valid ``lifetimes.switch_days`` for ``names`` (DNS names or IP addresses)."""
        names = list(names)
        if not names:
            raise ValueError("the switch certificate needs at least one name")
        alt: list[x509.GeneralName] = []
        for n in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)])
        return self._issue(subject, ExtendedKeyUsageOID.SERVER_AUTH, alt, *self.server_paths(), None, None,
                           self.lifetimes.switch_days)

    def server_names(self) -> list[str]:
        """The names (DNS names, then IP addresses) the current switch certificate is valid for."""
        cert = x509.load_pem_x509_certificate(self.server_paths()[0].read_bytes())
        try:
            alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return list(DEFAULT_SERVER_NAMES)
        return [*alt.get_values_for_type(x509.DNSName),
                *(str(a) for a in alt.get_values_for_type(x509.IPAddress))]

    def renew_server(self) -> IssuedCert:
        """A new key and certificate for the switch, for the names the current one has."""
        if not self.server_paths()[0].exists():
            raise PkiError(f"{self.server_paths()[0]}: no switch certificate to renew")
        return self.issue_server(self.server_names())

    def issue_terminal(self, terminal_id: str, ori: str, *, not_before: Optional[dt.datetime] = None,
                       not_after: Optional[dt.datetime] = None, cert_path: Optional[Path] = None,
                       key_path: Optional[Path] = None) -> IssuedCert:
        """A terminal's certificate (clientAuth): CN = terminal id, O = ORI, valid ``lifetimes.terminal_days``.

        Replaces any earlier certificate of the terminal (the caller registers
        the new fingerprint).  ``not_before``/``not_after`` (aware datetimes)
        override the validity, e.g. for an expired certificate in tests;
        ``cert_path``/``key_path`` write it somewhere other than terminals/.
        """
        if not ori:
            raise ValueError("a terminal certificate needs the terminal's ORI")
        default_cert, default_key = self.terminal_paths(terminal_id)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, terminal_id.upper()),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, ori.upper())])
        # A SAN is not needed by OpenSSL, but strict RFC 5280 client verifiers
        # (cryptography's among them) require one; a URN names the terminal.
        alt = [x509.UniformResourceIdentifier(f"urn:lems:terminal:{terminal_id.upper()}")]
        return self._issue(subject, ExtendedKeyUsageOID.CLIENT_AUTH, alt,
                           Path(cert_path or default_cert), Path(key_path or default_key), not_before, not_after,
                           self.lifetimes.terminal_days)


def make_foreign_ca(directory: Union[str, Path], clock: Any = None) -> Pki:
    """A separate CA, with its own switch certificate, that the real switch does not trust.

    For tests: ``make_foreign_ca(d).issue_terminal(...)`` makes a certificate
    that looks like a terminal's but chains to the wrong CA.
    """
    foreign = Pki(directory, clock=clock)
    foreign.create_ca(FOREIGN_CA_COMMON_NAME)
    foreign.issue_server()
    return foreign


# -- Twisted TLS ---------------------------------------------------------------------------------

_TLS_VERSIONS = {"1.2": "TLSv1_2", "1.3": "TLSv1_3"}


def _tls_version(min_tls: str) -> Any:
    from twisted.internet.ssl import TLSVersion

    try:
        return getattr(TLSVersion, _TLS_VERSIONS[min_tls])
    except KeyError:
        raise ValueError(f"minimum TLS version {min_tls!r}: use one of {', '.join(_TLS_VERSIONS)}") from None


def _private_certificate(cert_path: Path, key_path: Path) -> Any:
    from twisted.internet import ssl

    return ssl.PrivateCertificate.loadPEM(Path(cert_path).read_bytes() + b"\n" + Path(key_path).read_bytes())


# TLS 1.2: ephemeral ECDH and AEAD only (AES-GCM, ChaCha20-Poly1305), strongest first.
# No CBC, no CCM, no static RSA key exchange, no finite-field DHE.  TLS 1.3 keeps
# OpenSSL's own suites, which are all AEAD (AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM).
TLS12_CIPHERS = ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
                 "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256")
# Key exchange groups, both versions: no X448, no P-521, no finite-field groups.
TLS_GROUPS = ("X25519", "P-256", "P-384")


def _acceptable_ciphers() -> Any:
    from twisted.internet import ssl

    return ssl.AcceptableCiphers.fromOpenSSLCipherString(":".join(TLS12_CIPHERS))


def _set_groups(connection: Any) -> Any:
    """Restrict one pyOpenSSL connection's key exchange groups to TLS_GROUPS (pyOpenSSL has no call for it)."""
    from OpenSSL._util import lib

    if lib.SSL_set1_curves_list(connection._ssl, ":".join(TLS_GROUPS).encode("ascii")) != 1:
        raise PkiError(f"this OpenSSL cannot restrict the TLS groups to {', '.join(TLS_GROUPS)}")
    return connection


def _groups(inner: Any) -> Any:
    """Wrap a Twisted TLS connection creator so that its every connection offers only TLS_GROUPS."""
    return _groups_creator()(inner)


@functools.cache
def _groups_creator() -> type:
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator
    from zope.interface import implementer

    @implementer(IOpenSSLServerConnectionCreator, IOpenSSLClientConnectionCreator)
    class GroupsCreator:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def serverConnectionForTLS(self, protocol: Any) -> Any:
            return _set_groups(self.inner.serverConnectionForTLS(protocol))

        def clientConnectionForTLS(self, protocol: Any) -> Any:
            return _set_groups(self.inner.clientConnectionForTLS(protocol))

    return GroupsCreator


def server_context_factory(pki: Pki, *, min_tls: str = "1.2") -> Any:
    """Connection creator for ``reactor.listenSSL``: the switch certificate, and mutual TLS.

    A peer must present a certificate that chains to the switch CA (and allows
    client authentication) or the handshake fails; which terminal it is, and
    whether it may come in, is decided afterwards from ``peer_fingerprint``.
    ``min_tls`` is the floor ("1.2" or "1.3"); TLS 1.3 is negotiated when offered.
    TLS 1.2 offers only TLS12_CIPHERS, both versions only TLS_GROUPS.
    """
    from twisted.internet import ssl

    if not pki.exists():
        raise PkiError(f"{pki.directory}: no CA and switch certificate here")
    ca = ssl.Certificate.loadPEM(pki.ca_cert_path.read_bytes())
    server = _private_certificate(*pki.server_paths())
    return _groups(ssl.CertificateOptions(
        privateKey=server.privateKey.original.to_cryptography_key(),  # pyOpenSSL PKey objects are deprecated
        certificate=server.original.to_cryptography(),
        verify=True,
        caCerts=[ca.original],
        requireCertificate=True,
        raiseMinimumTo=_tls_version(min_tls),
        acceptableCiphers=_acceptable_ciphers(),
    ))


def web_context_factory(pki: Pki, *, min_tls: str = "1.2") -> Any:
    """Like ``server_context_factory`` (the switch certificate, the same versions, suites and
    groups) but without client certificates: the dealers' HTTPS interface (PROTOCOL.md 10),
    whose clients authenticate with an API key instead."""
    from twisted.internet import ssl

    if not pki.exists():
        raise PkiError(f"{pki.directory}: no CA and switch certificate here")
    server = _private_certificate(*pki.server_paths())
    return _groups(ssl.CertificateOptions(
        privateKey=server.privateKey.original.to_cryptography_key(),
        certificate=server.original.to_cryptography(),
        raiseMinimumTo=_tls_version(min_tls),
        acceptableCiphers=_acceptable_ciphers(),
    ))


def client_context_from_paths(ca_path: Union[str, Path], cert_path: Optional[Union[str, Path]],
                              key_path: Optional[Union[str, Path]], *, hostname: str = "localhost",
                              min_tls: str = "1.2") -> Any:
    """Client connection creator for ``reactor.connectSSL`` from explicit files.

    The switch certificate must chain to ``ca_path`` and name ``hostname``
    (the emulator's own certificate names ``localhost`` and ``127.0.0.1``).
    With ``cert_path`` None no client certificate is presented, which the
    switch refuses (tests use that).  Offers what the switch accepts, nothing else.
    """
    from twisted.internet import ssl

    ca = ssl.Certificate.loadPEM(Path(ca_path).read_bytes())
    client = None
    if cert_path is not None:
        client = _private_certificate(Path(cert_path), Path(key_path if key_path is not None else cert_path))
    return _groups(ssl.optionsForClientTLS(
        hostname, trustRoot=ca, clientCertificate=client,
        extraCertificateOptions={"raiseMinimumTo": _tls_version(min_tls),
                                 "acceptableCiphers": _acceptable_ciphers()}))
