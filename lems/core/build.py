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
from lems.core.schedule import EveryDays
from lems.core.switch import Switch
from lems.store import Store
from lems.store.trail import AuditTrail
from lems.wire.codec import Codec


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
    router = load_router(home, settings, codec, store, clock, AuditTrail(store, clock))
    switch = Switch(settings, registry, codec, router, store, clock, log)
    # Firearms instant checks for dealers (PROTOCOL.md 10): its timers join the switch's schedule.
    switch.fics = Fics(switch)  # type: ignore[attr-defined]
    add_validation_jobs(switch)
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
