"""Discord's OpenAPI description ships inside the repository, so validation runs in a fresh clone with no set-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakes.openapi_check import BUNDLED_SPEC, default_spec_path, get_checker


def test_the_bundled_spec_is_the_default_without_any_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """With DISCORD_OPENAPI_SPEC unset the default is the copy in the repository, and it is Discord's v10 spec."""
    monkeypatch.delenv("DISCORD_OPENAPI_SPEC", raising=False)
    assert default_spec_path() == BUNDLED_SPEC
    assert BUNDLED_SPEC.is_file()
    spec = json.loads(BUNDLED_SPEC.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    assert spec["servers"] == [{"url": "https://discord.com/api/v10"}]
    assert "/applications/@me" in spec["paths"]
    readme = (BUNDLED_SPEC.parent / "README.md").read_text(encoding="utf-8")
    assert "github.com/discord/discord-api-spec" in readme


def test_the_bundled_spec_loads_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default checker is available (no skip) and tells a good request from a bad one."""
    monkeypatch.delenv("DISCORD_OPENAPI_SPEC", raising=False)
    checker = get_checker()
    assert checker.skip_reason is None
    assert checker.available
    assert checker.validate_request("GET", "/users/@me", query={}, headers={}) is None
    assert checker.validate_request("GET", "/no/such/route", query={}, headers={}) is not None


def test_the_environment_still_overrides_the_bundled_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """DISCORD_OPENAPI_SPEC, when set, wins over the bundled copy (a newer download, say)."""
    other = tmp_path / "openapi.json"
    monkeypatch.setenv("DISCORD_OPENAPI_SPEC", str(other))
    assert default_spec_path() == other
