"""A small TOML writer for the registry files the switch rewrites.

tomllib only reads.  The registry needs to write back what it owns (terminal
fingerprints, revocations), so this emits the subset those files use: arrays of
tables whose values are strings, booleans, integers, lists of strings and one
level of sub-tables.  Output is re-read with tomllib before it replaces a file.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: dict[str, list[dict[str, Any]]], header: str = "") -> str:
    out = [header.rstrip("\n") + "\n"] if header else []
    for table, rows in doc.items():
        for row in rows:
            out.append(f"[[{table}]]\n")
            subs = {k: v for k, v in row.items() if isinstance(v, dict)}
            for key, value in row.items():
                if key not in subs and value is not None:
                    out.append(f"{key} = {_value(value)}\n")
            for sub, values in subs.items():
                out.append(f"[{table}.{sub}]\n")
                for key, value in values.items():
                    if value is not None:
                        out.append(f"{key} = {_value(value)}\n")
            out.append("\n")
    return "".join(out)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old file or the new one, never half."""
    tomllib.loads(text)  # never write a file the switch could not read back
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
