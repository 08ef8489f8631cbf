"""The console's OpenSSH keys: the host key, the administrator's key pair, conf/admin_keys.

* ``var/console/ssh_host_ed25519_key`` (and ``.pub``): the console server's host
  key, made by ``lems init`` or on the first start of an older home.
* ``var/console/admin_ed25519`` (and ``.pub``): the local administrator's key
  pair that ``lems init`` makes and lists in admin_keys; ``lems console`` signs
  in with it.
* ``conf/admin_keys`` (``[console] authorized_keys``): OpenSSH public key lines,
  ``[options] TYPE KEY [COMMENT]``; the comment is the name the administrator
  signs in as (``admin`` without one).  Read at each sign-in attempt, so a key
  added or removed takes effect without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.checkers import InMemorySSHKeyDB, SSHPublicKeyChecker
from twisted.conch.ssh import keys
from twisted.cred import checkers, credentials
from twisted.cred import error as cred_error
from twisted.internet import defer
from zope.interface import implementer

log = structlog.get_logger("lems.net.sshkeys")

HOST_KEY = "ssh_host_ed25519_key"
ADMIN_KEY = "admin_ed25519"
ADMIN_COMMENT = "lems-admin"
# ssh looks the console's host key up under this name, whatever the port.
HOST_ALIAS = "lems-console"
_KEY_TYPES = ("ssh-", "ecdsa-", "sk-")


def console_dir(home: Path) -> Path:
    return Path(home) / "var" / "console"


def _write_private(path: Path, key: ed25519.Ed25519PrivateKey, comment: str) -> str:
    """Write an OpenSSH private key (owner-only) and its .pub; returns the public line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode('ascii')} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line


def ensure_host_key(home: Path) -> Path:
    """The console server's host key, made on first use (homes from before the console have none)."""
    path = console_dir(home) / HOST_KEY
    if not path.exists():
        _write_private(path, ed25519.Ed25519PrivateKey.generate(), HOST_ALIAS)
    return path


def init_keys(home: Path, authorized_keys: Path) -> Path:
    """``lems init``: a host key, and an administrator key pair whose public key goes into admin_keys."""
    ensure_host_key(home)
    path = console_dir(home) / ADMIN_KEY
    line = _write_private(path, ed25519.Ed25519PrivateKey.generate(), ADMIN_COMMENT)
    existing = authorized_keys.read_text() if authorized_keys.exists() else ""
    with authorized_keys.open("a") as f:
        if existing and not existing.endswith("\n"):
            f.write("\n")
        f.write(line + "\n")
    return path


def read_admin_keys(path: Path) -> dict[bytes, str]:
    """Key blob -> the name it signs in as (its comment, or 'admin').  Options before the key type are ignored."""
    out: dict[bytes, str] = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        start = next((i for i, w in enumerate(words) if w.startswith(_KEY_TYPES)), None)
        try:
            if start is None or len(words) < start + 2:
                raise keys.BadKeyError("no key type and key")
            key = keys.Key.fromString(" ".join(words[start:start + 2]).encode("ascii"))
        except (keys.BadKeyError, ValueError, UnicodeEncodeError) as exc:
            log.warning("admin key line ignored", file=str(path), line=number, error=str(exc))
            continue
        out[key.blob()] = " ".join(words[start + 2:]) or "admin"
    return out


def fingerprint(blob: bytes) -> str:
    """SHA256:... as ssh-keygen -l prints it."""
    try:
        return keys.Key.fromString(blob).fingerprint(keys.FingerprintFormats.SHA256_BASE64)
    except keys.BadKeyError:
        return "unreadable key"


@implementer(checkers.ICredentialsChecker)
class AdminKeyChecker:
    """Public keys listed in admin_keys, and nothing else; the avatar id is the key's name there.

    Conch's SSHPublicKeyChecker matches the key and verifies the signature.  A key
    that is not listed is refused here first, whether or not it came signed:
    Conch would answer an unsigned probe with "this key will do" for any key, and
    the refusal is journaled (``refused(user, fingerprint)``).
    """

    credentialInterfaces = (credentials.ISSHPrivateKey,)

    def __init__(self, path: Path, refused: Callable[[str, str], None]) -> None:
        self.path = path
        self.refused = refused

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        names = read_admin_keys(self.path)
        if creds.blob not in names:
            self.refused(creds.username.decode("utf-8", "replace"), fingerprint(creds.blob))
            return defer.fail(cred_error.UnauthorizedLogin("key not in admin_keys"))
        listed = InMemorySSHKeyDB({creds.username: [keys.Key.fromString(blob) for blob in names]})
        return SSHPublicKeyChecker(listed).requestAvatarId(creds).addCallback(lambda _: names[creds.blob])
