"""Reply text, worded as PROTOCOL.md 5.2 and 5.3 say.

Builders return lists of lines (join with LF) or, where a whole reply text is
meant, a string.  A hit block shows the record's fields one ``MFC/value`` per
line, in the record's display order: one per line never splits a name and is
what replay comparisons and screen-scraping terminals handle best.  A record
that carries its printed text (a criminal or driver history: repeated ``RTX``
fields, lems.files.records) shows that text as plain lines, a rap sheet, after
its identification fields.  A reply that searched more than one record set has
a section per set, each under its heading (``LEDS RESPONSE``, ``NCIC RESPONSE``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Optional

from lems.files.records import data_fields, text_lines
from lems.wire.catalogue import FileSpec, KeySpec
from lems.wire.message import Message, Record

ACTION_WORDS = {"modify": "MODIFY", "cancel": "CANCEL", "locate": "LOCATE", "clear": "CLEAR", "enter": "ENTRY"}


def kind_word(codec: Any, file: str) -> str:
    """The file's ``record_word`` (files.toml): ``WANT`` for person files, ``RECORD`` for property files."""
    return codec.file(file).record_word


def criteria_text(msg: Message, spec: KeySpec) -> str:
    """The search data restated in a no-record line: ``NAM/DOE, JANE DOB/19900101``.

    Fields the catalogue marks ``criteria = false`` (PUR, ATN, EDB) are left out.
    """
    shown = []
    for code, value in msg.fields:
        field = spec.fields.get(code)
        if field is None or field.criteria:
            shown.append(f"{code}/{value}")
    return " ".join(shown)


def section_heading(record_set: str) -> str:
    """The first line of a record set's section (PROTOCOL.md 5.2): ``LEDS RESPONSE``, ``NCIC RESPONSE``."""
    return f"{record_set} RESPONSE"


def no_record_line(record_set: str, kind: str, criteria: str) -> str:
    """``NO LEDS WANT NAM/DOE, JANE DOB/19900101`` / ``NO NCIC RECORD LIC/ABC123``."""
    return f"NO {record_set} {kind} {criteria}".rstrip()


def caution_lines(record: Record, file: FileSpec, cautions: Optional[Mapping[str, str]] = None) -> list[str]:
    """The record's own caution (or the lines its CMC codes give), then the file's standing caution."""
    lines: list[str] = []
    if record.caution:
        lines.append(record.caution)
    elif cautions:
        lines += [cautions[code] for name, code in record.fields if name == "CMC" and code in cautions]
    if file.caution and file.caution not in lines:
        lines.append(file.caution)
    return lines


def hit_block(record: Record, file: FileSpec, agency_name: str,
              cautions: Optional[Mapping[str, str]] = None, confirm: bool = True) -> list[str]:
    """One record of a positive reply (PROTOCOL.md 5.2): cautions, ``MKE/<title>``, the
    fields as ``MFC/value`` pairs, the printed record (rap sheet) as plain lines, the
    entering agency, ``NIC/ DTE/`` and the file's ``confirm_line`` (files.toml; a file
    whose line is empty has none).  ``confirm=False`` leaves the line out whatever the
    catalogue says (Nlets answers from registrations and histories, which are not hot records)."""
    lines = caution_lines(record, file, cautions)
    lines.append(f"MKE/{file.title}")
    lines += [f"{code}/{value}" for code, value in data_fields(record)]
    lines += text_lines(record)
    if record.status == "located":
        lines.append("RECORD LOCATED - SEE LOCATE DATA")
    lines.append(f"ORI IS {agency_name}")
    lines.append(f"NIC/{record.nic} DTE/{record.entered}")
    if confirm and file.confirm_line:
        lines.append(file.confirm_line)
    return lines


def entry_accepted(msg: Message, file: FileSpec, nic: str) -> list[str]:
    """Acknowledgement of an entry: the new NIC and the agency's OCA."""
    lines = [f"{msg.ori}", f"{msg.mke} ACCEPTED - {file.title} ENTERED"]
    name = msg.get("NAM")
    if name:
        lines.append(f"NAM/{name}")
    lines.append(f"NIC/{nic} OCA/{msg.get('OCA', '')}")
    return lines


def maintenance_ack(msg: Message, spec: KeySpec, file: FileSpec, record: Record) -> list[str]:
    """Modify, cancel, locate or clear accepted: restates the action and the NIC."""
    action = ACTION_WORDS.get(spec.action, spec.action.upper())
    lines = [f"{msg.ori}", f"{msg.mke} ACCEPTED - {action} {file.title}"]
    name = record.get("NAM")
    if name:
        lines.append(f"NAM/{name}")
    lines.append(f"NIC/{record.nic} OCA/{record.get('OCA', '')}")
    return lines


def reject_on_file(record: Record, file: FileSpec, agency_name: str,
                   cautions: Optional[Mapping[str, str]] = None) -> list[str]:
    """A duplicate entry: ``REJECT ON FILE`` then the record already on file."""
    return ["REJECT ON FILE"] + hit_block(record, file, agency_name, cautions)


def reject_not_on_file(msg: Message) -> list[str]:
    """The record to change is not there: ``REJECT NOT ON FILE`` and what was asked for."""
    asked = " ".join(f"{code}/{msg.get(code)}" for code in ("NIC", "NAM", "OCA") if msg.has(code))
    return ["REJECT NOT ON FILE"] + ([asked] if asked else [])


def locate_notice(record: Record, file: FileSpec, locating_ori: str, msg: Message) -> list[str]:
    """The U notice to the entering ORI's terminals when its record is located."""
    lines = [f"LOCATE NOTICE - {file.title}", f"NIC/{record.nic} OCA/{record.get('OCA', '')}"]
    name = record.get("NAM")
    if name:
        lines.append(f"NAM/{name}")
    lines.append(f"LOCATED BY ORI {locating_ori} DOL/{msg.get('DOL', '')}"
                 + (f" LCA/{msg.get('LCA')}" if msg.has("LCA") else ""))
    return lines


# -- Nlets ----------------------------------------------------------------------------------


def _when(moment: dt.datetime) -> str:
    """``HHMM MMDDCCYY``."""
    return moment.strftime("%H%M %m%d%Y")


def nlets_header(reply_key: str, answering_ori: str, received: dt.datetime, input_seq: int,
                 sent: dt.datetime, output_seq: int, dest_ori: str, control: Optional[str] = None) -> list[str]:
    """The three header lines of an Nlets reply, the control line when given, and ``TXT``."""
    lines = [f"{reply_key}.{answering_ori}",
             f"{_when(received)} {input_seq % 100000:05d}",
             f"{_when(sent)} {output_seq % 100000:05d} {dest_ori}"]
    if control:
        lines.append(f"*{control}")
    lines.append("TXT")
    return lines


def nlets_no_record(msg: Message, spec: KeySpec) -> str:
    """A state's section when nothing matched: ``NO RECORD LIC/TEST123``."""
    return f"NO RECORD {criteria_text(msg, spec)}".rstrip()


def nlets_no_answer(state_code: str, state_name: str) -> str:
    """Why a state's section is missing (its handler failed or timed out)."""
    return f"{state_code} {state_name} FILE HANDLER UNAVAILABLE OR FAILED - NO ANSWER"


def nlets_carried(msg: Message, addressed: str) -> str:
    """What an agency's terminal receives for an inquiry addressed to its ORI."""
    lines = [f"{msg.mke}.{msg.ori}.{addressed}"]
    if msg.control:
        lines.append(f"*{msg.control}")
    lines.append("TXT")
    lines.append(".".join(f"{code}/{value}" for code, value in msg.fields))
    return "\n".join(lines)


def nlets_carried_ack(msg: Message, dest: str, outcome_line: str) -> list[str]:
    """The sender's section for an inquiry carried to an ORI."""
    lines = [f"{msg.mke} ACCEPTED FOR {dest}"]
    if msg.control:
        lines.append(f"*{msg.control}")
    return lines + [outcome_line]


def nl_summary(answers: Mapping[str, Optional[bool]]) -> list[str]:
    """The summary of an ``NL`` fan-out.

    ``answers`` maps each configured state to True (answered with a hit), False
    (answered, no record) or None (did not answer).
    """
    answered = sorted(s for s, a in answers.items() if a is not None)
    hits = sorted(s for s, a in answers.items() if a is True)
    none = sorted(s for s, a in answers.items() if a is False)
    silent = sorted(s for s, a in answers.items() if a is None)

    def listed(states: list[str]) -> str:
        return " ".join(states) if states else "NONE"

    return [f"NL SUMMARY - {len(answers)} STATES QUERIED",
            f"ANSWERED: {listed(answered)}",
            f"HIT: {listed(hits)}",
            f"NO RECORD: {listed(none)}",
            f"NO ANSWER: {listed(silent)}"]
