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
from lems.core.router import Router
from lems.core.schedule import DailyAt, EveryMonths
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
    add_ppf_jobs(switch)
    return switch


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
