"""``lems ca renew``: new keys for the switch and for terminals, lifetimes from [pki] (issue 14, finding 9)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from lems import cli
from lems.base.conf import Settings
from lems.base.registry import Registry
from lems.net import pki
from lems.tools import home as home_mod


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_uses_the_pki_lifetimes(tmp_path):
    home = tmp_path / "home"
    home_mod.init(home)
    ca = pki.Pki(home / "var" / "pki")
    ca_cert, server = _cert(ca.ca_cert_path), _cert(ca.server_paths()[0])
    terminal = _cert(ca.terminal_paths("T0100001")[0])
    days = lambda c: (c.not_valid_after_utc - c.not_valid_before_utc - pki.BACKDATE).days  # noqa: E731
    assert (days(ca_cert), days(server), days(terminal)) == (1826, 365, 365)


def test_renew_switch_and_terminal(tmp_path, capsys):
    home = tmp_path / "home"
    home_mod.init(home)
    conf = home / "conf" / "lems.toml"
    conf.write_text(conf.read_text().replace("switch_days = 365", "switch_days = 90")
                    .replace("terminal_days = 365", "terminal_days = 30"))
    ca = pki.Pki(Settings.load(home).pki_dir)
    old_server = ca.server_paths()[0].read_bytes()
    old_fp = Registry.load(home / "terminals").terminals["T0100001"].fingerprint
    old_t2 = Registry.load(home / "terminals").terminals["T0100002"].fingerprint

    assert cli.main(["ca", "renew", "--switch", "t0100001", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    server = _cert(ca.server_paths()[0])
    assert ca.server_paths()[0].read_bytes() != old_server
    assert (server.not_valid_after_utc - server.not_valid_before_utc - pki.BACKDATE).days == 90
    assert ca.server_names() == ["localhost", "127.0.0.1"]
    assert "for localhost, 127.0.0.1, valid until" in out

    registry = Registry.load(home / "terminals")
    new_fp = registry.terminals["T0100001"].fingerprint
    assert new_fp != old_fp and new_fp == pki.fingerprint_file(ca.terminal_paths("T0100001")[0])
    assert registry.terminals["T0100002"].fingerprint == old_t2  # only what was named
    terminal = _cert(ca.terminal_paths("T0100001")[0])
    assert terminal.not_valid_after_utc - terminal.not_valid_before_utc - pki.BACKDATE == dt.timedelta(days=30)
    assert f"fingerprint {new_fp} registered" in out


def test_renew_refuses_nothing_and_unknown(tmp_path, capsys):
    home = tmp_path / "home"
    home_mod.init(home)
    before = (home / "terminals" / "terminals.toml").read_text()
    assert cli.main(["ca", "renew", "--home", str(home)]) == 2
    assert "--switch" in capsys.readouterr().err
    # An unknown terminal: nothing renewed, not even the ones named beside it.
    assert cli.main(["ca", "renew", "T0100001", "T0100099", "--home", str(home)]) == 2
    assert "no terminal T0100099" in capsys.readouterr().err
    assert (home / "terminals" / "terminals.toml").read_text() == before
