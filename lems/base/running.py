"""Where a running switch listens: ``var/run/listeners.json`` (issue 15 item 5).

``lems serve`` writes the addresses it actually bound (``--port``, ``--port 0``,
``--host``, ``--console-port`` included) when it starts and removes the file when
it stops cleanly; the tools that take ``--home`` (``lems send``, ``lems term``,
``lems replay``, ``lems console``) read it and fall back to conf/lems.toml when
it is absent, unreadable, or stale (the process it names is not running).

    {"pid": 4242, "instance": "<random>", "listeners": {"terminals": {"host": "127.0.0.1",
     "port": 7700, "framing": "stx"}, ...}, "console": {"host": "127.0.0.1", "port": 7722}}

Owner-only like the rest of var/ (file 0600, directory 0700).  ``instance``
lets a switch remove only its own file (two switches started one after the other
in one process, as the tests do, share a pid).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Optional

from lems.base.private import FILE_MODE, private_dir

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def path_of(home: Path) -> Path:
    return Path(home) / "var" / "run" / "listeners.json"


def write(home: Path, listeners: dict[str, dict[str, Any]], console: Optional[dict[str, Any]]) -> str:
    """Record the bound addresses; returns the instance token ``remove`` needs."""
    path = path_of(home)
    private_dir(path.parent)
    instance = secrets.token_hex(8)
    body = json.dumps({"pid": os.getpid(), "instance": instance, "listeners": listeners, "console": console},
                      indent=1) + "\n"
    tmp = path.with_name(path.name + f".{instance}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(body)
    os.replace(tmp, path)
    return instance


def remove(home: Path, instance: str) -> None:
    """Remove the file if it is still this switch's."""
    found = _load(path_of(home))
    if found is not None and found.get("instance") == instance:
        try:
            path_of(home).unlink()
        except FileNotFoundError:
            pass


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _load(path: Path) -> Optional[dict[str, Any]]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def read(home: Path) -> Optional[dict[str, Any]]:
    """The running switch's record, or None when there is none or it is stale."""
    found = _load(path_of(home))
    if found is None or not _alive(found.get("pid")):
        return None
    return found


def _address(entry: Any) -> Optional[tuple[str, int]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("port"), int):
        return None
    host = str(entry.get("host") or "")
    return WILDCARDS.get(host, host), entry["port"]


def listener(home: Path, name: str) -> Optional[tuple[str, int]]:
    """(host to connect to, port) of the running switch's listener ``name``, or None."""
    found = read(home)
    listeners = found.get("listeners") if found else None
    return _address(listeners.get(name)) if isinstance(listeners, dict) else None


def console(home: Path) -> Optional[tuple[str, int]]:
    """(host, port) of the running switch's console, or None."""
    found = read(home)
    return _address(found.get("console")) if found else None
