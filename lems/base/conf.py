"""Switch settings from a home's conf/lems.toml.

Every limit, timer and path the switch uses is here, with the value the demo
home ships; the switch reads nothing from the environment.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

FRAMINGS = ("stx", "length")


class ConfError(Exception):
    """conf/lems.toml is missing or wrong; the message names the setting."""


def _check_numbers(settings: object, numbers: tuple[str, ...], counts: tuple[str, ...]) -> None:
    """ValueError naming the first of ``numbers`` that is not a number 0 or more, or of
    ``counts`` that is not a whole number 1 or more."""
    for name in numbers:
        if not isinstance(getattr(settings, name), (int, float)) or getattr(settings, name) < 0:
            raise ValueError(f"{name} must be a number, 0 or more")
    for name in counts:
        if not isinstance(getattr(settings, name), int) or getattr(settings, name) < 1:
            raise ValueError(f"{name} must be a whole number, 1 or more")


@attrs.frozen
class Listener:
    name: str
    host: str
    port: int
    framing: str


@attrs.frozen
class Limits:
    max_payload: int = 16384
    max_garbage: int = 65536
    write_hard_limit: int = 4194304
    max_connections: int = 1000
    max_connections_per_address: int = 300
    queue_depth: int = 5000
    handler_seconds: float = 2.0
    # Connections (docs/SECURITY.md, "Connections"): a TLS handshake not finished in
    # handshake_seconds is dropped; at most max_handshakes connections may be
    # unidentified at once (max_connections counts identified terminals only).
    handshake_seconds: float = 5.0
    max_handshakes: int = 256
    # Frames read and held while a connection waits (a password check); at the cap the
    # switch stops reading that connection until they are answered.
    max_held_frames: int = 256
    # Token buckets per terminal on the switch clock: sustained rate and burst; 0 = no limit.
    inputs_per_second: float = 20.0
    input_burst: int = 200
    signons_per_second: float = 1.0
    signon_burst: int = 10

    def __attrs_post_init__(self) -> None:
        _check_numbers(self, ("handshake_seconds", "inputs_per_second", "signons_per_second"),
                       ("max_handshakes", "max_held_frames", "input_burst", "signon_burst"))


@attrs.frozen
class SessionRules:
    lock_after_minutes: float = 30
    disconnect_after_minutes: float = 60
    failed_signons: int = 5
    failed_window_minutes: float = 15
    exempt_types: tuple[str, ...] = ("mobile", "dispatch", "receive-only")
    # log2 of the scrypt N passwords are hashed and rehashed to (17: N = 131072).
    # Lower only in a benchmark home, whose sign-ons are not what it measures.
    password_cost: int = 17


@attrs.frozen
class PkiLifetimes:
    """[pki]: how long the certificates ``lems init``, ``lems ca issue`` and ``lems ca renew`` make live."""

    ca_days: int = 1826        # 5 years: the trust anchor, replaced by hand
    switch_days: int = 365     # the switch certificate, renewed with `lems ca renew --switch`
    terminal_days: int = 365   # terminal certificates, renewed with `lems ca renew TERMINAL`


@attrs.frozen
class ConsoleLimits:
    """[console]: SSH connection attempts accepted from one address in a window (reactor clock)."""

    attempts_per_address: int = 10
    attempt_window_seconds: float = 60.0


@attrs.frozen
class ClockSettings:
    """[clock]: may an administrator move switch time forward (``clock advance``, PROTOCOL.md 8)?

    A test system only: every time-based rule then runs on the emulated clock.
    """

    adjustable: bool = False


@attrs.frozen
class DealerSettings:
    """[dealer]: the firearms dealers' HTTPS interface (PROTOCOL.md 10)."""

    host: str = "127.0.0.1"
    port: int = 7743
    # Checks are kept this many days (switch time), then purged.
    retention_days: int = 1826
    # Per-dealer request rate: a token bucket on the switch clock (0: no limit).
    requests_per_second: float = 10.0
    request_burst: int = 200
    # Largest request body accepted (bytes); a larger one is answered 413.
    max_body_bytes: int = 65536
    # A check still pending after this many minutes gets an estimated_completion, this
    # many hours after it was received.
    pending_minutes: float = 30
    estimate_hours: float = 72
    # Portal sign-in sessions end after this many minutes without a request.
    session_minutes: float = 30

    def __attrs_post_init__(self) -> None:
        _check_numbers(self, ("requests_per_second", "pending_minutes", "estimate_hours", "session_minutes"),
                       ("retention_days", "request_burst", "max_body_bytes"))
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError("port must be 0-65535")


@attrs.frozen
class ValidationSettings:
    """[validation]: record validation lists (PROTOCOL.md 11, lems.traffic.validation).

    ``interval_days``: how often the lists go out; ``certify_days``: how long an agency
    has after a list went out to validate its records before they are retired.
    """

    interval_days: float = 30
    certify_days: int = 30


@attrs.frozen
class NicsSettings:
    """[nics]: reporting the prohibited persons file to NICS (PROTOCOL.md 9)."""

    transmit_at: str = "02:00"      # the daily transmission, switch local time HH:MM
    reconcile_months: int = 3       # the reconciliation with NICS's report, every N months
    destination: str = "WVNICS000"  # the NICS route of routes/routes.toml ([[remote]] ori)


@attrs.frozen
class Settings:
    home: Path
    name: str
    state: str
    timezone: ZoneInfo
    holidays: frozenset[dt.date]
    listeners: tuple[Listener, ...]
    limits: Limits
    session: SessionRules
    review_grace_days: int
    warn_days: int
    hit_urgent_minutes: float
    hit_routine_minutes: float
    store_path: Path
    log_path: Path
    retention_days: int
    console_host: str
    console_port: int
    authorized_keys: Path
    banner: str
    pki: PkiLifetimes = attrs.field(factory=PkiLifetimes)
    console_limits: ConsoleLimits = attrs.field(factory=ConsoleLimits)
    clock: ClockSettings = attrs.field(factory=ClockSettings)
    dealer: DealerSettings = attrs.field(factory=DealerSettings)
    validation: ValidationSettings = attrs.field(factory=ValidationSettings)
    nics: NicsSettings = attrs.field(factory=NicsSettings)

    @property
    def pki_dir(self) -> Path:
        return self.home / "var" / "pki"

    @classmethod
    def load(cls, home: Path) -> "Settings":
        home = Path(home).resolve()
        path = home / "conf" / "lems.toml"
        try:
            with path.open("rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError:
            raise ConfError(f"{path}: no such file (is {home} a LEMS home? `lems init DIR` makes one)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfError(f"{path}: {exc}") from None
        return cls.from_dict(home, raw, path)

    @classmethod
    def from_dict(cls, home: Path, raw: dict[str, Any], origin: Path | str = "conf/lems.toml") -> "Settings":
        def section(name: str) -> dict[str, Any]:
            value = raw.get(name, {})
            if not isinstance(value, dict):
                raise ConfError(f"{origin}: [{name}] must be a table")
            return value

        switch = section("switch")
        try:
            zone = ZoneInfo(switch.get("timezone", "America/Los_Angeles"))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfError(f"{origin}: switch.timezone: {exc}") from None
        try:
            holidays = frozenset(dt.date.fromisoformat(d) for d in switch.get("holidays", []))
        except (TypeError, ValueError) as exc:
            raise ConfError(f"{origin}: switch.holidays: {exc}") from None

        listeners = []
        for item in raw.get("listener", []):
            framing = item.get("framing", "stx")
            if framing not in FRAMINGS:
                raise ConfError(f"{origin}: listener {item.get('name')!r}: framing must be one of {FRAMINGS}")
            listeners.append(Listener(item.get("name", framing), item.get("host", "127.0.0.1"),
                                      int(item.get("port", 0)), framing))
        if not listeners:
            raise ConfError(f"{origin}: at least one [[listener]] is required")

        try:
            limits = Limits(**_known(Limits, section("limits"), origin, "limits"))
        except (TypeError, ValueError) as exc:
            raise ConfError(f"{origin}: [limits] {exc}") from None
        sess = _known(SessionRules, section("session"), origin, "session")
        if "exempt_types" in sess:
            sess["exempt_types"] = tuple(sess["exempt_types"])
        agreements, hits, store, log = section("agreements"), section("hits"), section("store"), section("log")
        audit, console, banner = section("audit"), section("console"), section("banner")
        return cls(
            home=home,
            name=switch.get("name", "LEMS EMULATOR"),
            state=switch.get("state", "OR"),
            timezone=zone,
            holidays=holidays,
            listeners=tuple(listeners),
            limits=limits,
            session=SessionRules(**sess),
            review_grace_days=int(agreements.get("review_grace_days", 30)),
            warn_days=int(agreements.get("warn_days", 30)),
            hit_urgent_minutes=float(hits.get("urgent_minutes", 10)),
            hit_routine_minutes=float(hits.get("routine_minutes", 60)),
            store_path=home / store.get("path", "var/lems.sqlite"),
            log_path=home / log.get("path", "var/log/lems.jsonl"),
            retention_days=int(audit.get("retention_days", 365)),
            console_host=console.get("host", "127.0.0.1"),
            console_port=int(console.get("port", 7722)),
            authorized_keys=home / console.get("authorized_keys", "conf/admin_keys"),
            banner=banner.get("text", "").strip("\n"),
            pki=_pki_lifetimes(section("pki"), origin),
            console_limits=_console_limits(console, origin),
            clock=_clock_settings(section("clock"), origin),
            dealer=_dealer_settings(section("dealer"), origin),
            validation=_validation_settings(section("validation"), origin),
            nics=_nics_settings(section("nics"), origin),
        )


def _pki_lifetimes(values: dict[str, Any], origin: Any) -> PkiLifetimes:
    lifetimes = PkiLifetimes(**{k: int(v) for k, v in _known(PkiLifetimes, values, origin, "pki").items()})
    for name in ("ca_days", "switch_days", "terminal_days"):
        if getattr(lifetimes, name) < 1:
            raise ConfError(f"{origin}: pki.{name} must be at least 1")
    if max(lifetimes.switch_days, lifetimes.terminal_days) > lifetimes.ca_days:
        raise ConfError(f"{origin}: [pki] a certificate cannot outlive the CA (ca_days = {lifetimes.ca_days})")
    return lifetimes


def _console_limits(console: dict[str, Any], origin: Any) -> ConsoleLimits:
    names = {a.name for a in attrs.fields(ConsoleLimits)}
    limits = ConsoleLimits(**{k: v for k, v in console.items() if k in names})
    if int(limits.attempts_per_address) < 1 or float(limits.attempt_window_seconds) <= 0:
        raise ConfError(f"{origin}: console.attempts_per_address must be at least 1 and "
                        "console.attempt_window_seconds above 0")
    return ConsoleLimits(int(limits.attempts_per_address), float(limits.attempt_window_seconds))


def _dealer_settings(values: dict[str, Any], origin: Any) -> DealerSettings:
    try:
        return DealerSettings(**_known(DealerSettings, values, origin, "dealer"))
    except (TypeError, ValueError) as exc:
        raise ConfError(f"{origin}: [dealer] {exc}") from None


def _clock_settings(values: dict[str, Any], origin: Any) -> ClockSettings:
    clock = ClockSettings(**_known(ClockSettings, values, origin, "clock"))
    if not isinstance(clock.adjustable, bool):
        raise ConfError(f"{origin}: clock.adjustable must be true or false")
    return clock


def _validation_settings(values: dict[str, Any], origin: Any) -> ValidationSettings:
    known = _known(ValidationSettings, values, origin, "validation")
    try:
        settings = ValidationSettings(interval_days=float(known.get("interval_days", 30)),
                                      certify_days=int(known.get("certify_days", 30)))
    except (TypeError, ValueError):
        raise ConfError(f"{origin}: [validation] interval_days and certify_days must be numbers of days") from None
    if settings.interval_days <= 0 or settings.certify_days < 1:
        raise ConfError(f"{origin}: [validation] interval_days must be above 0 and certify_days at least 1")
    return settings


def _nics_settings(values: dict[str, Any], origin: Any) -> NicsSettings:
    nics = NicsSettings(**_known(NicsSettings, values, origin, "nics"))
    text = nics.transmit_at
    parts = text.split(":") if isinstance(text, str) else []
    if (len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts)
            or not (int(parts[0]) < 24 and int(parts[1]) < 60)):
        raise ConfError(f"{origin}: nics.transmit_at must be a time of day HH:MM, not {text!r}")
    if not isinstance(nics.reconcile_months, int) or isinstance(nics.reconcile_months, bool) \
            or not 1 <= nics.reconcile_months <= 24:
        raise ConfError(f"{origin}: nics.reconcile_months must be a whole number from 1 to 24")
    if not (isinstance(nics.destination, str) and len(nics.destination) == 9 and nics.destination.isalnum()):
        raise ConfError(f"{origin}: nics.destination must be a 9-character ORI")
    return attrs.evolve(nics, destination=nics.destination.upper())


# Settings an earlier lems.toml may still carry that nothing reads any more: accepted
# and ignored, so an old home still loads.  (write_high_water: Twisted's own transport
# buffer pauses the reader; only write_hard_limit is the switch's.)
RETIRED = {"limits": frozenset({"write_high_water"})}


def _known(kind: type, values: dict[str, Any], origin: Any, name: str) -> dict[str, Any]:
    fields = {a.name for a in attrs.fields(kind)}
    retired = RETIRED.get(name, frozenset())
    unknown = set(values) - fields - retired
    if unknown:
        raise ConfError(f"{origin}: [{name}] has unknown settings {sorted(unknown)}")
    return {k: v for k, v in values.items() if k not in retired}
