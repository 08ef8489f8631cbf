"""The console's ``validation`` and ``training`` (PROTOCOL.md 11).

``validation run`` sends the lists now (the ``validation lists`` job), ``validation
lists ORI`` shows an agency's lists (the outstanding ones in full, as sent),
``validation status [ORI]`` the lists outstanding and the records at risk per
agency, ``validation record NIC`` one record's validation.

``training OPERATOR`` shows an operator's training, ``training ORI`` every operator
of an agency (the agency's trainer's view), and ``training OPERATOR issued|completed
[--level L] [--date CCYYMMDD]`` records a guide issued or a training completed, with
the LEDS representative rule; the running switch takes it at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from lems.admin.operations import AdminError
from lems.admin.shell import Console, Reply, command
from lems.base.registry import LEVELS, TRAINING_EVENTS, Operator, TrainingError

VALIDATION_USAGE = "validation run | lists ORI | status [ORI] | record NIC"
TRAINING_USAGE = "training OPERATOR|ORI [issued|completed [--level L] [--date CCYYMMDD]]"


def _ymd(moment: Any) -> str:
    return f"{moment:%Y%m%d}"


@command("validation", VALIDATION_USAGE,
         "record validation: send the lists now, an agency's lists, lists outstanding and records at risk, a record")
def do_validation(console: Console, args: list[str], line: str, target: dict) -> Reply:
    usage = Reply([f"usage: {VALIDATION_USAGE}"], ok=False)
    if not args:
        return usage
    what, rest = args[0].lower(), args[1:]
    switch = console.switch
    validation = switch.router.validation
    if what == "run" and not rest:
        from lems.traffic.validation import LIST_JOB

        lines = switch.schedule.run_now(LIST_JOB) or []
        return Reply(lines or ["no records due for validation; no list sent"])
    if what == "lists" and len(rest) == 1:
        ori = rest[0].upper()
        if ori not in switch.registry.agencies:
            raise AdminError(f"NO AGENCY {ori}")
        target["ori"] = ori
        rows = validation.lists(ori)
        out = [f"{'LIST':<10}{'SENT':<10}{'DEADLINE':<10}{'RECORDS':>8}  STATE"]
        for row in rows:
            state = row.state + (f" {_ymd(validation.today(row.certified))} BY {row.certified_by}"
                                 if row.certified else "")
            out.append(f"{row.list_id:<10}{_ymd(validation.today(row.sent)):<10}"
                       f"{_ymd(validation.today(row.deadline)):<10}{row.records:>8}  {state}")
        out.append(f"{len(rows)} validation list(s) for {ori}")
        for row in rows:
            if row.state == "OUTSTANDING":
                out += ["", *row.text.split("\n")]
        return Reply(out)
    if what == "status" and len(rest) <= 1:
        oris = [rest[0].upper()] if rest else sorted({r.ori for r in validation.lists()})
        if rest and oris[0] not in switch.registry.agencies:
            raise AdminError(f"NO AGENCY {oris[0]}")
        out = []
        for ori in oris:
            view = validation.agency_view(ori)
            out.append(f"{ori} {switch.registry.agency_name(ori)}: {len(view.outstanding)} list(s) outstanding, "
                       f"{len(view.at_risk)} record(s) at risk, {view.retired} retired")
            for row, item in view.at_risk:
                out.append(f"  {row.list_id} DEADLINE {_ymd(validation.today(row.deadline))}  {item.line()}")
        return Reply(out or ["no validation list has been sent"])
    if what == "record" and len(rest) == 1:
        nic = rest[0].upper()
        record, _ = validation.find(nic)
        state = validation.record_state(nic)
        if record is None and state is None:
            raise AdminError(f"NO RECORD NIC/{nic}")
        out = [f"NIC/{nic}" + (f" {record.file}/{record.record_set} {record.status.upper()} ENTERED "
                               f"{record.entered} BY {record.ori}" if record else "")]
        if state is None or (state.validated is None and state.list_id is None):
            out.append("never validated, on no validation list")
        else:
            if state.validated:
                out.append(f"last validated {_ymd(state.validated)} by {state.validated_by} ({state.how})")
            else:
                out.append("never validated")
            if state.list_id:
                out.append(f"last on validation list {state.list_id}")
            if state.retired:
                out.append(f"RETIRED - NOT VALIDATED {_ymd(validation.today(state.retired))}")
        return Reply(out)
    return usage


def training_lines(operator: Operator, today: dt.date, policy: Any, first_signon: Optional[dt.date]) -> list[str]:
    iso = lambda d: d.isoformat() if d else "-"  # noqa: E731
    lines = [f"{operator.id:<9}{operator.ori:<10}{operator.level:<8}guide {iso(operator.guide_issued):<11}"
             f"completed {iso(operator.certified):<11}first sign-on {iso(first_signon):<11}"
             + ("LEDS REPRESENTATIVE" if operator.representative else "")]
    problem = policy.training_problem(operator, first_signon, today)
    deadline = policy.training_deadline(operator, first_signon, today)
    expires = policy.certification_expires(operator)
    if problem:
        lines.append(f"{'':<9}SIGN-ON REFUSED: {problem}")
    elif deadline is not None:
        lines.append(f"{'':<9}{deadline[0].replace('NOT ', 'TO BE ')} BY {deadline[1].isoformat()}")
    elif expires is not None:
        lines.append(f"{'':<9}{'CERTIFICATION EXPIRED' if expires <= today else 'CERTIFIED UNTIL'} "
                     f"{expires.isoformat()}")
    return lines


@command("training", TRAINING_USAGE,
         "operator training: show an operator's or an agency's, or record a guide issued or a training completed")
def do_training(console: Console, args: list[str], line: str, target: dict) -> Reply:
    from lems.store import training as training_store

    usage = Reply([f"usage: {TRAINING_USAGE}"], ok=False)
    if not args:
        return usage
    switch = console.switch
    registry, policy = switch.registry, switch.policy
    today = policy.today()
    who = args[0].upper()
    first = lambda op: training_store.first_signon(switch.store.conn, op.id)  # noqa: E731
    if len(args) == 1:
        if who in registry.operators:
            op = registry.operators[who]
            target["ori"] = op.ori
            return Reply(training_lines(op, today, policy, first(op)))
        if who in registry.agencies:
            target["ori"] = who
            out = [f"{who} {registry.agency_name(who)}"]
            for op in registry.operators_of(who):
                out += training_lines(op, today, policy, first(op))
            if registry.representative(who) is None:
                out.append("NO LEDS REPRESENTATIVE: set representative = true for one operator in terminals/")
            return Reply(out)
        raise AdminError(f"NO OPERATOR OR AGENCY {who}")
    event, options = args[1].lower(), args[2:]
    if event not in TRAINING_EVENTS or len(options) % 2:
        return usage
    level, day = None, today
    for key, value in zip(options[::2], options[1::2], strict=True):
        if key == "--level" and value.lower() in LEVELS:
            level = value.lower()
        elif key == "--date":
            try:
                day = dt.datetime.strptime(value, "%Y%m%d").date()
            except ValueError:
                raise AdminError(f"--date {value} IS NOT A DATE CCYYMMDD") from None
        else:
            return usage
    if who in registry.operators:
        target["ori"] = registry.operators[who].ori  # (the journal's operator is the administrator)
    try:
        new = registry.with_training(who, event, day, level, today=today)
    except TrainingError as exc:
        raise AdminError(str(exc)) from None
    switch.registry = new  # in force for the next sign-on, at once (PROTOCOL.md 8)
    # Announced like `lems operator training` does, for any other switch on this store; this one has it.
    from lems.base.clock import stamp

    switch.registry_seen = switch.store.announce_registry_change(
        f"OPERATOR {who} TRAINING {event.upper()} {day.isoformat()}", stamp(switch.clock.now()))
    op = new.operators[who]
    return Reply([f"operator {who} training {event} {day.isoformat()} recorded",
                  *training_lines(op, today, policy, first(op))])
