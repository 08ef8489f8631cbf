"""lems.base.log: JSON lines with the bound context, warnings echoed to stderr."""

from __future__ import annotations

import json

import pytest
import structlog

from lems.base import log


@pytest.fixture
def log_file(tmp_path, switch_log):
    path = tmp_path / "var" / "log" / "lems.jsonl"
    yield path
    log.configure(switch_log)  # the run's own log for the tests after this one


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_json_object_per_event_with_the_connection_context(log_file, capsys):
    log.configure(log_file, echo=True)
    conn_log = structlog.get_logger("lems.link").bind(terminal="T0100001", ori="OR9990100", session="0a1b2c")
    conn_log.info("connected", remote="127.0.0.1:40000")
    conn_log.bind(operator="OP010001").warning("terminal not reading; disconnected", buffered=5000000)
    conn_log.debug("not written")
    first, second = lines(log_file)
    assert first["event"] == "connected" and first["level"] == "info" and first["remote"] == "127.0.0.1:40000"
    assert (first["terminal"], first["ori"], first["session"]) == ("T0100001", "OR9990100", "0a1b2c")
    assert "operator" not in first and second["operator"] == "OP010001"
    assert first["timestamp"].endswith("Z")
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: terminal not reading; disconnected terminal=T0100001 ori=OR9990100 session=0a1b2c "
                   "operator=OP010001 buffered=5000000"]


def test_appends_and_echoes_only_when_asked(log_file, capsys):
    log.configure(log_file)
    structlog.get_logger().error("first", path=log_file)  # not JSON by itself: written with str()
    log.configure(log_file)
    structlog.get_logger().info("second")
    assert [e["event"] for e in lines(log_file)] == ["first", "second"]
    assert lines(log_file)[0]["path"] == str(log_file)
    assert capsys.readouterr().err == ""


def test_nowhere(log_file, capsys):
    log.configure(None, echo=True)
    structlog.get_logger().warning("only on stderr")
    assert capsys.readouterr().err == "warning: only on stderr \n"
    assert not log_file.exists()
