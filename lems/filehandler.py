"""The built-in file handler: the record files of routes/records, indexed.

Inquiries search the (file, record set) index with the inquiry's fields.
"""

from __future__ import annotations

from typing import Sequence

from lems.handlers import HandlerContext, HandlerError
from lems.message import Message, Record
from lems.records import RecordFileError, RecordFiles, load_record_files


class RecordFileHandler:
    def __init__(self, context: HandlerContext) -> None:
        self.context = context
        directory = context.home / "routes" / context.options.get("records", "records")
        try:
            self.files = RecordFiles(load_record_files(directory))
        except (OSError, RecordFileError) as exc:
            raise HandlerError(str(exc)) from exc

    def inquire(self, msg: Message, file: str, record_set: str) -> Sequence[Record]:
        return self.files.index(file, record_set).search(msg.field_map())
