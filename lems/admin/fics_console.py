"""The console's firearms instant check commands (PROTOCOL.md 10).

* ``fics pending``: the checks waiting for an examiner, with what the searches found;
* ``fics show TRANSACTION``, ``fics approve TRANSACTION``, ``fics deny TRANSACTION``;
* ``dealer list``, ``dealer suspend|revoke|reinstate DEALER``: in force for the
  dealer's very next request (its portal sessions end with it).  The console's
  own ``suspend``, ``revoke`` and ``reinstate`` take a dealer too
  (``suspend dealer D0000001``, or just ``suspend D0000001``).

The work is lems.core.fics's; this module only reads the words and prints.
"""

from __future__ import annotations

import re

from lems.admin.shell import Console, Reply, command
from lems.core.fics import FicsError

_DEALER = re.compile(r"^D\d{7}$", re.IGNORECASE)
DEALER_ACTIONS = {"suspend": "suspended", "revoke": "revoked", "reinstate": "active"}
FICS_USAGE = "fics pending | fics show|approve|deny TRANSACTION"
DEALER_USAGE = "dealer list | dealer suspend|revoke|reinstate DEALER"


def _fics(console: Console):
    return console.switch.fics


def _reasons(check) -> list[str]:
    lines = []
    for r in check.reasons:
        where = f"{r.get('file', '')} {r.get('set', '')} {r.get('nic', '')} ORI/{r.get('ori', '')}" \
            if r.get("nic") else ""
        lines.append(f"    {r.get('search', ''):<4}{where} {r.get('note', '')}".rstrip())
    return lines


def _show(check) -> list[str]:
    b = check.buyer
    lines = [f"{check.txn}  {check.status.upper()}  DEALER {check.dealer}  RECEIVED {check.received}",
             f"  BUYER {check.buyer_name}  DOB {b.get('dob')}  SEX {b.get('sex')}  RACE {b.get('race') or '-'}  "
             f"ID {b.get('id_type')} {b.get('id_number')} {b.get('id_state')}",
             *(f"  FIREARM {g.get('type')} {g.get('make')} {g.get('model')} {g.get('caliber')} SER/{g.get('serial')}"
               for g in check.guns)]
    if check.approval_number:
        lines.append(f"  APPROVAL {check.approval_number}")
    if check.decided:
        lines.append(f"  DECIDED {check.decided} BY {check.decided_by}")
    if check.estimated_completion:
        lines.append(f"  ESTIMATED COMPLETION {check.estimated_completion}")
    lines += ["  FOUND (examiners only):" if check.reasons else "  FOUND nothing", *_reasons(check)]
    return lines


@command("fics", FICS_USAGE, "firearms instant checks: examiners see pending checks and approve or deny them")
def do_fics(console: Console, args: list[str], line: str, target: dict) -> Reply:
    usage = Reply([f"usage: {FICS_USAGE}"], ok=False)
    if not args:
        return usage
    action = args[0].lower()
    fics = _fics(console)
    if action == "pending" and len(args) == 1:
        checks = fics.pending()
        lines = [f"{'TRANSACTION':<14}{'DEALER':<10}{'RECEIVED':<22}{'ESTIMATED':<22}BUYER"]
        for c in checks:
            lines.append(f"{c.txn:<14}{c.dealer:<10}{c.received:<22}{c.estimated_completion or '-':<22}"
                         f"{c.buyer_name} {c.buyer.get('dob')}")
            lines += _reasons(c)
        lines.append(f"{len(checks)} pending check(s)")
        return Reply(lines)
    if action in ("show", "approve", "deny") and len(args) == 2:
        txn = args[1].upper()
        try:
            if action == "show":
                check = fics.get(txn)
                if check is None:
                    return Reply([f"REFUSED: NO CHECK {txn}"], ok=False)
                return Reply(_show(check))
            check = fics.decide(txn, "approved" if action == "approve" else "denied", console.who)
        except FicsError as exc:
            return Reply([f"REFUSED: {exc}"], ok=False)
        lines = [f"check {check.txn} {check.status.upper()} by {console.who}"
                 + (f"; approval number {check.approval_number}" if check.approval_number else "")]
        return Reply(lines)
    return usage


def dealer_status(console: Console, action: str, dealer_id: str) -> Reply:
    try:
        dealer, before = _fics(console).set_dealer_status(dealer_id, DEALER_ACTIONS[action], console.who)
    except FicsError as exc:
        return Reply([f"REFUSED: {exc}"], ok=False)
    return Reply([f"dealer {dealer.id} {dealer.status} (was {before}); in force for its next request"])


@command("dealer", DEALER_USAGE, "firearms dealers: list them, or suspend, revoke or reinstate one at once")
def do_dealer(console: Console, args: list[str], line: str, target: dict) -> Reply:
    if args and args[0].lower() == "list" and len(args) == 1:
        dealers = _fics(console).dealers
        lines = [f"{'DEALER':<10}{'FFL':<22}{'STATUS':<11}NAME"]
        lines += [f"{d.id:<10}{d.ffl:<22}{d.status:<11}{d.name}" for d in dealers.by_id.values()]
        lines.append(f"{len(dealers.by_id)} dealer(s)")
        return Reply(lines)
    if len(args) == 2 and args[0].lower() in DEALER_ACTIONS:
        return dealer_status(console, args[0].lower(), args[1])
    return Reply([f"usage: {DEALER_USAGE}"], ok=False)


def _with_dealers(name: str) -> None:
    """``suspend|revoke|reinstate dealer ID`` and ``... D0000001`` on the console's own commands."""
    original = getattr(Console, f"do_{name}")

    def handler(self: Console, args: list[str], line: str, target: dict) -> Reply:
        if len(args) == 2 and args[0].lower() == "dealer":
            return dealer_status(self, name, args[1])
        if (len(args) == 1 and _DEALER.match(args[0]) and args[0].upper() not in self.switch.registry.agencies
                and args[0].upper() not in self.switch.registry.terminals):
            return dealer_status(self, name, args[0])
        return original(self, args, line, target)

    setattr(Console, f"do_{name}", handler)


for _name in DEALER_ACTIONS:
    _with_dealers(_name)


def _reload_with_dealers() -> None:
    """``reload`` reads terminals/dealers.toml too; a broken one refuses the reload, running one kept."""
    from lems.base.dealers import Dealers
    from lems.base.registry import RegistryError

    original = Console.do_reload

    def handler(self: Console, args: list[str], line: str, target: dict) -> Reply:
        fics = _fics(self)
        try:
            dealers = Dealers.load(fics.directory)
        except (RegistryError, OSError) as exc:
            return Reply([f"REFUSED: {exc}; the running configuration is kept"], ok=False)
        reply = original(self, args, line, target)
        if not reply.ok:
            return reply
        fics.adopt_dealers(dealers)
        return Reply([*reply.lines, f"dealers: {len(dealers.by_id)}"], reply.ok, reply.close)

    Console.do_reload = handler  # type: ignore[method-assign]


_reload_with_dealers()


def _complete_dealers() -> None:
    """TAB completes ``fics`` and ``dealer`` actions, dealer ids and pending transactions."""
    first, complete = Console._first_arguments, Console.complete

    def first_arguments(self: Console, name: str) -> list[str]:
        if name == "fics":
            return ["pending", "show", "approve", "deny"]
        if name == "dealer":
            return ["list", *DEALER_ACTIONS]
        options = first(self, name)
        if name in DEALER_ACTIONS:
            options = [*options, "dealer", *_fics(self).dealers.by_id]
        return options

    def completion(self: Console, before: str) -> tuple[str, list[str]]:
        word, options = complete(self, before)
        done = before.split() if not before or before[-1].isspace() else before.split()[:-1]
        if len(done) == 2 and done[0].lower() in ("fics", "dealer", *DEALER_ACTIONS):
            if done[0].lower() == "fics" and done[1].lower() in ("show", "approve", "deny"):
                options = [c.txn for c in _fics(self).pending()]
            elif done[1].lower() in DEALER_ACTIONS or done[1].lower() == "dealer":
                options = list(_fics(self).dealers.by_id)
            options = sorted(o for o in options if o.lower().startswith(word.lower()))
        return word, options

    Console._first_arguments = first_arguments  # type: ignore[method-assign]
    Console.complete = completion  # type: ignore[method-assign]


_complete_dealers()
