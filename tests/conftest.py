"""Shared fixtures.

Integration tests run the real switch in this process: one Twisted reactor in a
background thread for the whole test run (a reactor cannot be restarted), a
fresh home made by ``lems init`` for each test, and services bound to free
127.0.0.1 ports that are stopped when the test ends.  Terminals are the
project's blocking TLS client with certificates from the home's own PKI.
Time-based tests give the service a FakeClock and call ``tick`` themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import pytest
from twisted.internet import reactor, threads

from lems.tools import home as home_mod
from lems.tools.client import TerminalClient
from lems.base.clock import FakeClock
from lems.base.registry import Registry

PASSWORD = home_mod.DEMO_PASSWORD
_reactor_thread: Optional[threading.Thread] = None


def _ensure_reactor() -> None:
    global _reactor_thread
    if _reactor_thread is None:
        _reactor_thread = threading.Thread(
            target=lambda: reactor.run(installSignalHandlers=False), name="reactor", daemon=True)
        _reactor_thread.start()


def in_reactor(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in the reactor thread and wait for its (possibly Deferred) result."""
    _ensure_reactor()
    return threads.blockingCallFromThread(reactor, fn, *args, **kwargs)


def pytest_sessionfinish(session, exitstatus):
    if _reactor_thread is not None:
        reactor.callFromThread(reactor.stop)
        _reactor_thread.join(timeout=10)


@pytest.fixture(scope="session", autouse=True)
def switch_log(tmp_path_factory) -> Path:
    """The in-process switches log to one JSON-lines file per test run, not to the terminal."""
    from lems.base import log

    path = tmp_path_factory.mktemp("log") / "lems.jsonl"
    log.configure(path)
    return path


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """One `lems init` per test run (key generation is the slow part); tests copy it."""
    path = tmp_path_factory.mktemp("template") / "home"
    home_mod.init(path, clock=FakeClock())
    return path


@pytest.fixture
def home(demo_template, tmp_path) -> Path:
    path = tmp_path / "home"
    shutil.copytree(demo_template, path)
    return path


class Running:
    """A started service and helpers to reach it."""

    def __init__(self, home: Path, clock: FakeClock, **options: Any) -> None:
        from lems.net.service import Service

        self.home = home
        self.clock = clock
        self.options = options
        self.service = in_reactor(lambda: Service(home, clock=clock, port=0, host="127.0.0.1", **options))
        self.ports = in_reactor(self.service.start)
        self.port = self.ports["terminals"]
        self.clients: list[TerminalClient] = []

    @property
    def switch(self):
        return self.service.switch

    def client(self, terminal: str, listener: str = "terminals", cert: Optional[Path] = None,
               key: Optional[Path] = None, ca: Optional[Path] = None, **kw: Any) -> TerminalClient:
        pki = self.home / "var" / "pki"
        framing = next(l.framing for l in self.service.settings.listeners if l.name == listener)
        registry = Registry.load(self.home / "terminals")
        term = registry.terminals.get(terminal)
        c = TerminalClient("127.0.0.1", self.ports[listener], ca or pki / "ca.crt",
                           cert or pki / "terminals" / f"{terminal}.crt", key or pki / "terminals" / f"{terminal}.key",
                           framing, timeout=kw.pop("timeout", 10), ack=bool(term and term.ack), **kw)
        self.clients.append(c)
        return c

    def signed_on(self, terminal: str, ori: str, operator: str, password: str = PASSWORD, **kw: Any) -> TerminalClient:
        c = self.client(terminal, **kw).connect()
        banner = c.banner()
        assert banner.cls == "S", banner
        reply = c.sign_on(ori, operator, password)
        assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED"), reply
        return c

    def tick(self) -> None:
        in_reactor(self.service.tick)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return in_reactor(fn, *args)

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        if self.service is not None:
            in_reactor(self.service.stop)
            self.service = None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def switch_factory(home, clock):
    started: list[Running] = []

    def start(**options: Any) -> Running:
        running = Running(home, clock, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def running(switch_factory) -> Running:
    return switch_factory()


def edit_registry(home: Path, **changes: Any) -> None:
    """Change the home's registry before a switch starts: agencies/terminals/operators by id."""
    registry = Registry.load(home / "terminals")
    for oid, fields in changes.get("operators", {}).items():
        registry = registry.with_operator(attrs.evolve(registry.operators[oid], **fields))
    for ori, fields in changes.get("agencies", {}).items():
        registry = registry.with_agency(attrs.evolve(registry.agencies[ori], **fields))
    for tid, fields in changes.get("terminals", {}).items():
        registry = registry.with_terminal(attrs.evolve(registry.terminals[tid], **fields))


def serve_process(home: Path, cwd: Optional[Path] = None) -> tuple[subprocess.Popen, int]:
    """`lems serve --port 0` on ``home`` in its own process; (process, terminal port) once it listens.

    Its output keeps being read into ``proc.lines`` by the thread ``proc.reader`` (join it after
    the process ends to have every line), so the switch never blocks on a full pipe.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, "-m", "lems", "serve", "--home", str(home), "--port", "0",
                             "--host", "127.0.0.1"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    proc.lines = []  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        proc.lines.append(line)  # type: ignore[attr-defined]
        m = re.search(r"terminals on 127\.0\.0\.1:(\d+)", line)
        if m:
            proc.reader = threading.Thread(target=lambda: proc.lines.extend(proc.stdout), daemon=True)  # type: ignore
            proc.reader.start()  # type: ignore[attr-defined]
            return proc, int(m.group(1))
    proc.kill()
    proc.wait()
    pytest.fail("lems serve did not start:\n" + "".join(proc.lines))  # type: ignore[attr-defined]
