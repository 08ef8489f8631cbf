"""Assemble a switch from a home: settings, registry, catalogues, route table, handlers.

The one place that knows how the core's parts fit together, so that the
service (lems.net.service), the console's ``reload`` and the tests build a
switch the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from lems.base.conf import Settings
from lems.base.registry import Registry
from lems.core.fics import Fics
from lems.core.router import Router
from lems.core.schedule import DailyAt, EveryDays, EveryMonths
from lems.core.switch import Switch
from lems.store import Store
from lems.store.trail import AuditTrail
from lems.wire.codec import Codec


STORE_WAIT_MS = 120_000


def load_router(home: Path, settings: Settings, codec: Codec, store: Store, clock: Any,
                trail: AuditTrail) -> Router:
    """The route table, its handlers and the traffic steps (raises RouteError with the reason).

    ``trail`` is the switch's: the journal has one writer (a reload passes ``switch.trail``).
    """
    return Router.from_home(Path(home), settings, codec, store, clock, trail)


def build_switch(home: Path, settings: Settings, store: Store, clock: Any, log: Optional[Any] = None) -> Switch:
    """A switch on ``store`` for the home's registry, catalogues and routes."""
    home = Path(home)
    registry = Registry.load(home / "terminals")
    codec = Codec.from_dir(home / "formats")
    # Another process may hold the store's write lock for a while (`lems ppf load` enters a whole
    # first file in one transaction, about 15 s for 100,000 rows): the switch waits for it rather
    # than fail the turn (SQLite's default is 5 s).
    store.conn.execute(f"PRAGMA busy_timeout = {STORE_WAIT_MS}")
    router = load_router(home, settings, codec, store, clock, AuditTrail(store, clock))
    switch = Switch(settings, registry, codec, router, store, clock, log)
    # Firearms instant checks for dealers (PROTOCOL.md 10): its timers join the switch's schedule.
    switch.fics = Fics(switch)  # type: ignore[attr-defined]
    add_validation_jobs(switch)
    add_ppf_jobs(switch)
    return switch


def add_validation_jobs(switch: Switch) -> None:
    """PROTOCOL.md 11: the validation lists every ``[validation] interval_days`` and, hourly on
    switch time, the retirement of records whose list's deadline passed (lems.traffic.validation).
    Each job asks the router in force (a reload replaces it) and delivers through the queues."""
    from lems.traffic.validation import LIST_JOB, RETIRE_JOB

    def job(name: str) -> Any:
        def run(now: Any) -> list[str]:
            validation = switch.router.validation
            work = validation.send_lists if name == LIST_JOB else validation.retire_due
            notices, lines = work(now, switch.registry, switch.hub)
            switch.deliver(notices)
            return lines
        return run

    # Retirement first: a record whose deadline came in the same jump is retired, not listed again.
    switch.schedule.add(RETIRE_JOB, EveryDays(1 / 24), job(RETIRE_JOB))
    switch.schedule.add(LIST_JOB, EveryDays(switch.settings.validation.interval_days), job(LIST_JOB))


# The scheduled jobs of the prohibited persons file's reporting (PROTOCOL.md 9), by name.
NICS_TRANSMIT = "nics transmit"
PPF_RECONCILE = "ppf reconcile"


def add_ppf_jobs(switch: Switch) -> None:
    """The daily NICS transmission at ``[nics] transmit_at`` and the reconciliation every
    ``[nics] reconcile_months``; each run's notices delivered (queued when not connected).
    The router is looked up at each run, so a ``reload`` changes what runs, not when."""
    nics = switch.settings.nics

    def run(kind: str) -> Any:
        def job(now: Any) -> str:
            ppf = switch.router.ppf
            done = (ppf.transmit if kind == "transmit" else ppf.reconcile)(switch.registry, switch.hub)
            switch.deliver(done.notices)
            return done.summary
        return job

    switch.schedule.add(NICS_TRANSMIT, DailyAt.parse(nics.transmit_at, switch.settings.timezone), run("transmit"))
    switch.schedule.add(PPF_RECONCILE, EveryMonths(nics.reconcile_months), run("reconcile"))
