"""Tools that take --home find a switch started with --port (issue 15 item 5, lems.base.running).

`lems serve` writes var/run/listeners.json (0600 in a 0700 directory) with the
addresses it bound, and removes it at a clean stop; `lems send`, `lems replay`'s
Target and `lems console` read it, and fall back to conf/lems.toml when it is
absent or stale.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from lems.base import running
from lems.base.conf import Settings
from lems.tools.client import for_terminal
from lems.tools.target import Target

from conftest import PASSWORD


def _lems(*args, **kw):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "lems", *args], capture_output=True, text=True, timeout=60,
                          env=env, **kw)


def test_send_and_console_find_a_switch_started_on_free_ports(home):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, "-m", "lems", "serve", "--home", str(home), "--port", "0",
                             "--console-port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until it says where its console is (printed after the listeners)
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "administrators' console" in line:
                break
        else:
            pytest.fail("lems serve did not start:\n" + "".join(lines))
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        port = int(re.search(r"terminals on [^:]+:(\d+)", "".join(lines)).group(1))
        settings = Settings.load(home)
        assert port != settings.listeners[0].port
        path = running.path_of(home)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        record = json.loads(path.read_text())
        assert record["pid"] == proc.pid and record["listeners"]["terminals"]["port"] == port

        sent = _lems("send", "T0100001", "HBT", "--home", str(home), "--operator", "OP010001",
                     "--password", PASSWORD)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "HBT" in sent.stdout
        status = _lems("console", "--home", str(home), "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "T0100001" in status.stdout or "sessions" in status.stdout.lower(), status.stdout
        target = Target.from_home(home)
        assert (target.host, target.port) == ("127.0.0.1", port)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(lines)
    assert not running.path_of(home).exists()  # removed at a clean stop


def test_a_stale_or_absent_file_falls_back_to_the_configuration(home):
    settings = Settings.load(home)
    configured = (settings.listeners[0].host, settings.listeners[0].port)
    client = for_terminal(home, "T0100001")
    assert (client.host, client.port) == configured  # no file
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    instance = running.write(home, {"terminals": {"host": "127.0.0.1", "port": 1, "framing": "stx"}},
                             {"host": "127.0.0.1", "port": 2})
    assert running.listener(home, "terminals") == ("127.0.0.1", 1)  # this process: alive
    record = json.loads(running.path_of(home).read_text())
    record["pid"] = dead.pid
    running.path_of(home).write_text(json.dumps(record))
    assert running.read(home) is None and running.console(home) is None
    client = for_terminal(home, "T0100001")
    assert (client.host, client.port) == configured
    running.path_of(home).write_text("not json")
    assert running.listener(home, "terminals") is None
    running.remove(home, instance)  # not ours any more (unreadable): left alone
    assert running.path_of(home).exists()


def test_an_in_process_switch_writes_its_file_and_removes_only_its_own(switch_factory, home):
    first = switch_factory()
    assert running.listener(home, "terminals") == ("127.0.0.1", first.port)
    assert running.console(home) == ("127.0.0.1", first.service.console.port)
    assert running.listener(home, "interfaces") == ("127.0.0.1", first.ports["interfaces"])
    first.stop()
    assert not running.path_of(home).exists()
    # A wildcard address is reached on loopback.
    running.write(home, {"terminals": {"host": "0.0.0.0", "port": 7, "framing": "stx"}}, None)
    assert running.listener(home, "terminals") == ("127.0.0.1", 7)
