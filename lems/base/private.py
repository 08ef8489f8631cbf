"""Owner-only files and directories for the switch's state (var/), whatever the umask.

Everything under a home's var/ holds switch state (the store and its -wal/-shm,
the journal's head file and signing key, the log, the PKI, the console keys,
captures written there): files 0600, directories 0700.  The modes are given at
creation (``os.open``/``mkdir`` with the mode) and set again with ``chmod``,
because the umask can only take bits away and a umask of 0 must not leave a
file more open than 0600 either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) and set it to 0700; its parents are left as they are."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it does not exist, and set it to 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return Path(path)


def open_private(path: Path, mode: str = "a", encoding: str = "utf-8") -> IO[str]:
    """Open a text file for writing (``a`` or ``w``), created 0600 and kept 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode, encoding=encoding)


def tighten(root: Path) -> list[Path]:
    """Set every directory under ``root`` (itself included) to 0700 and every file to 0600.

    Returns the paths whose mode changed (none when all were owner-only already).
    Symbolic links are not followed."""
    root = Path(root)
    changed: list[Path] = []
    if not root.is_dir() or root.is_symlink():
        return changed

    def fix(path: Path, mode: int) -> None:
        if stat.S_IMODE(path.lstat().st_mode) != mode:
            os.chmod(path, mode)
            changed.append(path)

    fix(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames:
            if not (base / name).is_symlink():
                fix(base / name, DIR_MODE)
        for name in filenames:
            if (base / name).is_file() and not (base / name).is_symlink():
                fix(base / name, FILE_MODE)
    return changed
