"""File handler plug-ins (docs/HANDLERS.md): found by entry point or by dotted path
from a home's routes/plugins/, answering over TLS without a change to lems/, and
a route table that names a handler that cannot be found refuses to load."""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path

import pytest

import lems
from lems.base.clock import FakeClock
from lems.wire.codec import Codec
from lems.base.conf import Settings
from lems.files.filehandler import RecordFileHandler
from lems.files.handlers import ENTRY_POINT_GROUP, HandlerError, load_handler_class
from lems.core.router import RouteError, Router, RouteTable
from lems.store.sqlite import Store

PLUGINS = Path(__file__).parent / "plugins"

IDAHO = """
[[handler]]
name = "idaho"
use = "example_handler:IdahoRegistrations"
agency = "ID9990777"

[[state]]
code = "ID"
name = "IDAHO"
ori = "ID0000000"
handler = "idaho"
set = "ID"
"""


def install_plugin(home: Path, module: str, routes: str = "") -> Path:
    """Copy tests/plugins/<module>.py into the home's routes/plugins/ and append ``routes`` to its route table.

    The module is dropped from ``sys.modules`` first, so the switch imports it
    afresh from this home (not from an earlier test's).
    """
    plugins = home / "routes" / "plugins"
    plugins.mkdir(exist_ok=True)
    shutil.copy(PLUGINS / f"{module}.py", plugins)
    sys.modules.pop(module, None)
    if routes:
        with (home / "routes" / "routes.toml").open("a") as f:
            f.write(routes)
    return plugins


def route_state_to(home: Path, state: str, handler: str, use: str) -> None:
    """Make ``state`` answered by a new handler ``handler`` (``use`` is its class)."""
    path = home / "routes" / "routes.toml"
    text = path.read_text()
    old = f'ori = "{state}0000000"\nhandler = "records"'
    assert old in text, f"the route table has no [[state]] {state} served by records"
    path.write_text(text.replace(old, f'ori = "{state}0000000"\nhandler = "{handler}"')
                    + f'\n[[handler]]\nname = "{handler}"\nuse = "{use}"\n')


def router_for(home: Path) -> Router:
    return Router.from_home(home, Settings.load(home), Codec.from_dir(home / "formats"), Store.open(":memory:"),
                            FakeClock())


# -- discovery ------------------------------------------------------------------------------


def test_builtin_records_handler_is_an_entry_point():
    try:
        metadata.distribution("lems")
    except metadata.PackageNotFoundError:  # pragma: no cover - a checkout that was never installed
        pytest.skip("lems is not installed, so its entry points are not registered")
    names = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert names.get("records") == "lems.files.filehandler:RecordFileHandler"
    assert load_handler_class("records", Path("/nonexistent")) is RecordFileHandler


def test_example_plugin_loads_from_the_home_by_dotted_path(home):
    install_plugin(home, "example_handler", IDAHO)
    router = router_for(home)
    handler = router.handlers["idaho"]
    assert type(handler).__name__ == "IdahoRegistrations"
    # It came from the home, not from lems/ or the test directory.
    assert Path(sys.modules["example_handler"].__file__).parent == home / "routes" / "plugins"
    assert not list(Path(lems.__file__).parent.glob("example_handler*"))
    assert router.table.states["ID"].handler == "idaho"
    assert list(router.table.states) == ["OR", "WA", "ID"]


def test_example_plugin_answers_over_tls(home, switch_factory):
    install_plugin(home, "example_handler", IDAHO)
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    reply = c.request("RQ.OR9990100.ID.*IDCTL.TXTLIC/IDTEST1")
    assert reply.cls == "R", reply.text
    lines = reply.text.split("\n")
    assert lines[0] == "RR.ID0000000" and lines[2].endswith(" OR9990100") and lines[3:5] == ["*IDCTL", "TXT"]
    assert "LIC/IDTEST1" in lines and "NAM/DOE, JOHN Q" in lines and "NIC/R000000901 DTE/20250101" in lines
    assert "ORI IS ID9990777" in lines  # the handler's option from the route table
    assert c.request("RQ.OR9990100.ID.TXTLIC/NOSUCH1").text.endswith("TXT\nNO RECORD LIC/NOSUCH1")
    # NL now fans out to the plug-in's state too.
    nl = c.request("RQ.OR9990100.NL.TXTVIN/1IDTESTVIN0000902")
    assert nl.cls == "R"
    summary = nl.text.split("\n\n")[-1].split("\n")
    assert summary == ["NL SUMMARY - 3 STATES QUERIED", "ANSWERED: ID OR WA", "HIT: ID", "NO RECORD: OR WA",
                       "NO ANSWER: NONE"]
    # The built-in handler still answers its states.
    assert c.request("RQ.OR9990100.OR.TXTLIC/TEST123").text.startswith("RR.OR0000000\n")


def test_failing_plugin_is_a_30_not_a_dead_switch(home, switch_factory):
    install_plugin(home, "failing_handler")
    route_state_to(home, "WA", "down", "failing_handler:FailingHandler")
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    alone = c.request("RQ.OR9990100.WA.TXTLIC/WATEST1")
    assert alone.cls == "E" and alone.text.startswith(".30. WA WASHINGTON FILE HANDLER UNAVAILABLE OR FAILED")
    assert running.switch.router.handlers["down"].calls == 1
    assert c.request("HBT").cls == "R"
    assert c.request("RQ.OR9990100.OR.TXTLIC/TEST123").cls == "R"


def test_handler_over_its_time_budget_is_a_30(home, switch_factory, clock):
    """[limits] handler_seconds: a late answer is not used; the NL summary says WA did not answer."""
    install_plugin(home, "failing_handler")
    route_state_to(home, "WA", "slow", "failing_handler:SlowHandler")
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    reply = c.request("DQ.OR9990100.NL.TXTNAM/DOE, JOHN Q.DOB/19800101")
    assert reply.cls == "R"
    lines = reply.text.split("\n")
    assert ".30. WA WASHINGTON FILE HANDLER UNAVAILABLE OR FAILED - NO ANSWER" in lines
    assert "NO ANSWER: WA" in lines and "HIT: OR" in lines


def test_slow_handler_for_an_ncic_inquiry_is_a_30(home, switch_factory, clock):
    install_plugin(home, "failing_handler", '\n[[handler]]\nname = "slow"\nuse = "failing_handler:SlowHandler"\n'
                   '\n[[inquiry]]\nkeys = ["QG"]\nfiles = ["gun"]\nsets = ["LEDS", "NCIC"]\nhandler = "slow"\n')
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    reply = c.request("QG.OR9990100.SER/TESTGUN001")
    assert reply.cls == "E" and reply.text.startswith(".30. FILE HANDLER UNAVAILABLE OR FAILED FOR QG")
    assert c.request("QV.OR9990100.LIC/TEST123.LIS/OR").cls == "R"


# -- a route table that names what cannot be found ------------------------------------------------


def write_routes(home: Path, text: str) -> Path:
    path = home / "routes" / "routes.toml"
    path.write_text(text)
    return path


def test_unknown_handler_name_in_a_state_is_refused(home):
    path = write_routes(home, '[[handler]]\nname = "records"\nuse = "records"\n\n'
                              '[[state]]\ncode = "ID"\nori = "ID0000000"\nhandler = "idaho"\nset = "ID"\n')
    with pytest.raises(RouteError, match="state #1 names unknown handler 'idaho'"):
        RouteTable.load(path)
    with pytest.raises(RouteError, match="'idaho'"):
        router_for(home)


def test_unknown_handler_name_in_an_inquiry_is_refused(home):
    path = write_routes(home, '[[handler]]\nname = "records"\nuse = "records"\n\n'
                              '[[inquiry]]\nkeys = ["QV"]\nfiles = ["vehicle"]\nsets = ["LEDS"]\nhandler = "dmv"\n')
    with pytest.raises(RouteError, match="inquiry #1 names unknown handler 'dmv'"):
        RouteTable.load(path)


@pytest.mark.parametrize("use", ["no_such_module_xyz:Handler", "example_handler:NoSuchClass", "no-such-entry-point"])
def test_handler_that_cannot_be_loaded_is_refused_by_name(home, use):
    install_plugin(home, "example_handler")
    write_routes(home, f'[[handler]]\nname = "broken"\nuse = "{use}"\n')
    with pytest.raises(RouteError) as caught:
        router_for(home)
    assert repr(use) in str(caught.value)
    assert isinstance(caught.value.__cause__, HandlerError)


def test_switch_with_a_broken_plugin_does_not_start(home, switch_factory):
    write_routes(home, (home / "routes" / "routes.toml").read_text()
                 + '\n[[handler]]\nname = "broken"\nuse = "gone_module:Handler"\n')
    with pytest.raises(RouteError, match="gone_module:Handler"):
        switch_factory()
