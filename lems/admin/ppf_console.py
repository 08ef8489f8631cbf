"""The console's prohibited persons file and NICS commands (PROTOCOL.md 9), and its lines in ``status``.

* ``ppf transmit``: the NICS transmission now (the daily job ``nics transmit``, run on demand);
* ``ppf reconcile``: the reconciliation with NICS's report now (job ``ppf reconcile``);
* ``nics down`` / ``nics up``: the emulated NICS stops / starts answering;
* ``nics forget <NRN>``: the emulated NICS loses one record.

Each is journaled twice: the console's own ``CONSOLE PPF`` / ``CONSOLE NICS``
record of the line, and the event itself (``NICS DOWN``, ``NICS TRANSMISSION``...).
"""

from __future__ import annotations

from typing import Any

from lems.admin.operations import AdminError
from lems.admin.shell import STATUS_LINES, Console, Reply, command

TRANSMIT_JOB = "nics transmit"
RECONCILE_JOB = "ppf reconcile"


# -- operations (no console text) ---------------------------------------------------------------

def run_job(switch: Any, job: str) -> str:
    """A PPF job now: its summary (the notice the control terminal got)."""
    if job not in switch.schedule.jobs:
        raise AdminError(f"NO SCHEDULED JOB {job.upper()} ON THIS SWITCH")
    summary = switch.schedule.run_now(job)
    switch.store.commit()
    return summary


def nics_remote(switch: Any) -> Any:
    ppf = switch.router.ppf
    remote = ppf.remote
    if remote is None or not hasattr(remote, "set_available"):
        raise AdminError(f"NO EMULATED NICS ROUTE {ppf.destination} IN routes/routes.toml")
    return remote


def set_nics(switch: Any, up: bool, who: str) -> bool:
    remote = nics_remote(switch)
    changed = remote.set_available(up)
    switch.audit("admin", None, event="NICS UP" if up else "NICS DOWN", operator=who.upper(),
                 outcome="OK", text=f"{remote.ori} {'UP' if up else 'DOWN'}{'' if changed else ' (ALREADY)'}")
    return changed


def forget(switch: Any, nrn: str, who: str) -> bool:
    remote = nics_remote(switch)
    gone = remote.forget(nrn)
    switch.audit("admin", None, event="NICS FORGET", operator=who.upper(), outcome="OK" if gone else "NOT ON FILE",
                 text=f"{remote.ori} NRN/{nrn.upper()}")
    return gone


# -- the commands ----------------------------------------------------------------------------------

@command("ppf", "ppf transmit|reconcile", "the NICS transmission or the reconciliation with NICS, now")
def do_ppf(console: Console, args: list[str], line: str, target: dict) -> Reply:
    if len(args) != 1 or args[0].lower() not in ("transmit", "reconcile"):
        return Reply(["usage: ppf transmit|reconcile"], ok=False)
    job = TRANSMIT_JOB if args[0].lower() == "transmit" else RECONCILE_JOB
    return Reply([run_job(console.switch, job)])


@command("nics", "nics down|up|forget NRN", "the emulated NICS: stop or start answering, or lose one record")
def do_nics(console: Console, args: list[str], line: str, target: dict) -> Reply:
    what = args[0].lower() if args else ""
    if what in ("down", "up") and len(args) == 1:
        changed = set_nics(console.switch, what == "up", console.who)
        ori = nics_remote(console.switch).ori
        return Reply([f"NICS {ori} {what.upper()}" + ("" if changed else " (IT ALREADY WAS)")])
    if what == "forget" and len(args) == 2:
        nrn = args[1].upper()
        if forget(console.switch, nrn, console.who):
            return Reply([f"NICS forgot NRN/{nrn}"])
        return Reply([f"NICS holds no NRN/{nrn}"], ok=False)
    return Reply(["usage: nics down|up|forget NRN"], ok=False)


def ppf_status(console: Console) -> list[str]:
    ppf = console.switch.router.ppf
    if ppf.handler is None:
        return []
    counts = ppf.counts()
    remote = ppf.remote
    state = "no route" if remote is None else ("up" if remote.available() else "DOWN")
    lines = [f"ppf           {counts.records} records  {counts.pending} pending transmission  "
             f"{counts.relieved} relieved  (NICS {ppf.destination} {state})"]
    for label, last in (("transmitted", counts.last_transmission), ("reconciled", counts.last_reconciliation)):
        lines.append(f"{label:<14}{last[0][:19].replace('T', ' ') + ' UTC  ' + last[1] if last else 'never'}")
    return lines


STATUS_LINES.append(ppf_status)
