"""conf/lems.toml: retired settings still load, unknown ones are named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import attrs
import pytest

from lems.base.conf import ConfError, Limits, Settings

REPO = Path(__file__).resolve().parent.parent


def demo_conf() -> dict:
    return tomllib.loads((REPO / "conf" / "lems.toml").read_text())


def test_the_demo_conf_loads_with_the_audit_retention():
    settings = Settings.from_dict(REPO, demo_conf())
    assert settings.retention_days == 400
    assert "write_high_water" not in {a.name for a in attrs.fields(Limits)}


def test_an_old_conf_with_write_high_water_still_loads():
    raw = demo_conf()
    raw["limits"]["write_high_water"] = 262144  # what lems.toml carried before it was retired
    assert Settings.from_dict(REPO, raw).limits == Settings.from_dict(REPO, demo_conf()).limits


def test_an_unknown_setting_is_named():
    raw = demo_conf()
    raw["limits"]["write_low_water"] = 1
    with pytest.raises(ConfError, match=r"\[limits\] has unknown settings \['write_low_water'\]"):
        Settings.from_dict(REPO, raw)
