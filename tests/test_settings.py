"""Settings: one clear line naming the variable for every bad value, and money from the TOML file without floats."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import ModelName, Quality, Size
from bot.settings import SettingsError, load_app_config, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "config" / "atelier.toml"


def config_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the shipped config with one line changed."""
    text = CONFIG.read_text(encoding="utf-8")
    assert old in text, f"config/atelier.toml no longer has {old!r}"
    path = tmp_path / "atelier.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_the_shipped_config_loads_with_integer_money() -> None:
    """Every amount in config/atelier.toml is integer micro-dollars once loaded."""
    config = load_app_config(CONFIG)
    assert config.budget.default_allowance == 1_000_000 and config.budget.server_cap is None
    assert config.limits.confirm_above == 500_000
    assert config.prices[ModelName.GPT_IMAGE_1_MINI][Quality.MEDIUM][Size.SQUARE] == 11_000
    assert all(
        type(price) is int
        for qualities in config.prices.values()
        for sizes in qualities.values()
        for price in sizes.values()
    )


def test_bare_toml_numbers_are_read_as_written_not_through_float(tmp_path: Path) -> None:
    """`0.12345649999999999999` is just under half a micro-dollar: exact, it rounds down (a float would round up)."""
    path = config_with(tmp_path, '"1024x1024" = "0.011"', '"1024x1024" = 0.12345649999999999999')
    assert float("0.12345649999999999999") == 0.1234565
    assert load_app_config(path).prices[ModelName.GPT_IMAGE_1][Quality.LOW][Size.SQUARE] == 123_456


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_count = 4", "max_count = 9", "limits.max_count: Input should be less than or equal to 4"),
        ('default_allowance = "1.00"', 'default_allowance = "-1"', "budget.default_allowance"),
        ('default_allowance = "1.00"', 'default_allowance = "lots"', "not an amount: 'lots'"),
        ('"1024x1536" = "0.200"', "", 'no price for prices."gpt-image-1.5".high."1024x1536"'),
        ('period = "month"', 'period = "year"', "budget.period"),
        ("[discord]", "[discrod]", "discrod: Extra inputs are not permitted"),
    ],
)
def test_a_bad_config_value_names_the_file_and_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    """The error is one line: ATELIER_CONFIG, the file, the dotted key and what is wrong with it."""
    path = config_with(tmp_path, old, new)
    with pytest.raises(SettingsError) as caught:
        load_app_config(path)
    text = str(caught.value)
    assert text.startswith(f"ATELIER_CONFIG: {path}: ") and message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RUNWARE_API_URL", "ftp://example", "must be a URL starting with http:// or https://"),
        ("RUNWARE_API_URL", "wss://example", "must be a URL starting with http:// or https://"),
        ("DISCORD_API_BASE", "discord.com/api", "must be a URL starting with http:// or https://"),
        ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg", "must be a URL starting with ws:// or wss://"),
        ("ATELIER_DEV_GUILD", "my server", "valid integer"),
        ("LOG_LEVEL", "loud", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_a_bad_environment_value_names_its_variable(variable: str, value: str, message: str) -> None:
    """`SettingsError` starts with the variable's name, on one line."""
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value, "ATELIER_CONFIG": str(CONFIG)})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_environment_values_are_tidied_and_secrets_stay_hidden() -> None:
    """URLs lose a trailing slash, empty values count as unset, and the repr never shows a secret."""
    settings = load_settings(
        {
            "RUNWARE_API_URL": "http://127.0.0.1:9/v1/",
            "DISCORD_GATEWAY_URL": "",
            "DISCORD_TOKEN": "token-value-123",
            "RUNWARE_API_KEY": "key-value-456",
            "LOG_LEVEL": "debug",
            "ATELIER_CONFIG": str(CONFIG),
        }
    )
    assert settings.runware_api_url == "http://127.0.0.1:9/v1"
    assert settings.discord_gateway_url is None and settings.log_level == "DEBUG"
    assert settings.require_discord_token() == "token-value-123"
    assert "token-value-123" not in repr(settings) and "key-value-456" not in repr(settings)


def test_missing_secrets_are_reported_when_needed() -> None:
    """Without a token or key, settings load, and asking for one names the variable."""
    settings = load_settings({"ATELIER_CONFIG": str(CONFIG)})
    with pytest.raises(SettingsError, match=r"^DISCORD_TOKEN: is required"):
        settings.require_discord_token()
    with pytest.raises(SettingsError, match=r"^RUNWARE_API_KEY: is required"):
        settings.require_runware_key()
