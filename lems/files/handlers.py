"""File handlers: the plug-in interface and the built-in record-file handler.

A handler answers for files: it is asked to ``inquire`` (return the records of
a file and record set that match an inquiry) and, for record maintenance, to
``enter``, ``modify``, ``cancel``, ``locate`` and ``clear``.  The switch calls
it, turns what it returns into reply text, and turns an exception into a
``.30.`` section instead of a dead switch.

Discovery: the route table names a handler by entry-point name (group
``lems.handlers``; lems registers ``records``) or by a dotted path
``package.module:Class``.  The class is built as ``Class(context)`` with a
``HandlerContext``.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import attrs

from lems.wire.message import Message, Record

ENTRY_POINT_GROUP = "lems.handlers"


class HandlerError(Exception):
    """A handler could not answer; the reply section says .30."""


class MaintenanceRefused(Exception):
    """Record maintenance the file refuses (not a failure of the handler)."""


class OnFile(MaintenanceRefused):
    """Duplicate entry: the same key data is on file from the same ORI (``REJECT ON FILE``)."""

    def __init__(self, record: Record) -> None:
        super().__init__(f"on file as {record.nic}")
        self.record = record


class NotOnFile(MaintenanceRefused):
    """The record to change is not on file, or does not match what the message names."""


class NotYours(MaintenanceRefused):
    """Only the entering ORI may modify, cancel or clear a record (``.22.``)."""

    def __init__(self, record: Record) -> None:
        super().__init__(f"{record.nic} was entered by {record.ori}")
        self.record = record


@attrs.frozen
class HandlerContext:
    """What a handler is given when it is built."""

    home: Path
    settings: Any
    codec: Any
    store: Any
    clock: Any
    options: Mapping[str, Any] = attrs.field(factory=dict)


class FileHandler(Protocol):
    """Inquiry returns the matching records (possibly none).  Maintenance
    returns the record as it is on file afterwards, or raises ``OnFile``,
    ``NotOnFile`` or ``NotYours``; any other exception is a handler failure.
    Only ``inquire`` is required: a handler without maintenance methods serves
    inquiries only."""

    def inquire(self, msg: Message, file: str, record_set: str) -> Sequence[Record]: ...

    def enter(self, msg: Message, file: str, record_set: str) -> Record: ...

    def modify(self, msg: Message, file: str, record_set: str) -> Record: ...

    def cancel(self, msg: Message, file: str, record_set: str) -> Record: ...

    def locate(self, msg: Message, file: str, record_set: str) -> Record: ...

    def clear(self, msg: Message, file: str, record_set: str) -> Record: ...


def load_handler_class(spec: str, home: Path) -> type:
    """A handler class from an entry-point name or ``module:Class``."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        plugins = str(home / "routes" / "plugins")
        if Path(plugins).is_dir() and plugins not in sys.path:
            sys.path.insert(0, plugins)
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise HandlerError(f"handler {spec!r} cannot be loaded: {exc}") from exc
    if spec in BUILTIN:
        module_name, _, attr = BUILTIN[spec].partition(":")
        return getattr(importlib.import_module(module_name), attr)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == spec:
            return ep.load()
    raise HandlerError(f"no handler named {spec!r} (entry point group {ENTRY_POINT_GROUP})")


# Built-ins resolve without package metadata, so a plain checkout works too.
BUILTIN = {"records": "lems.files.filehandler:RecordFileHandler"}
