"""Settings: one clear line naming the variable for every bad value, and money from the TOML file without floats."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.catalog import ModelName, Quality, Size
from bot.settings import DEFAULT_DATABASE, ENVIRONMENT_VARIABLES, SettingsError, load_app_config, load_settings
from bot.settings.shards import ShardRange, shard_of

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


HTTP_URL = "must be a URL starting with http:// or https:// and naming a host"
WS_URL = "must be a URL starting with ws:// or wss:// and naming a host"
GUILD_ID = "must be a Discord server id (a positive whole number)"
PG_URL = "postgresql://bot:pw@db.example:5432/atelier"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RUNWARE_API_URL", "ftp://example", HTTP_URL),
        ("RUNWARE_API_URL", "wss://example", HTTP_URL),
        ("RUNWARE_API_URL", "http://", HTTP_URL),
        ("RUNWARE_API_URL", "https:///v1", HTTP_URL),
        ("RUNWARE_API_URL", "https://user@/v1", HTTP_URL),
        ("RUNWARE_API_URL", "https://api.runware.ai:99999/v1", "with a port from 1 to 65535"),
        ("RUNWARE_API_URL", "https://api.runware.ai:0/v1", "with a port from 1 to 65535"),
        ("RUNWARE_API_URL", "https://api.runware.ai:http/v1", "with a port from 1 to 65535"),
        ("RUNWARE_API_URL", "https://api.runware .ai/v1", HTTP_URL),
        ("DISCORD_API_BASE", "discord.com/api", HTTP_URL),
        ("DISCORD_API_BASE", "https://", HTTP_URL),
        ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg", WS_URL),
        ("DISCORD_GATEWAY_URL", "wss://", WS_URL),
        ("ATELIER_DEV_GUILD", "my server", GUILD_ID),
        ("ATELIER_DEV_GUILD", "-5", GUILD_ID),
        ("ATELIER_DEV_GUILD", "0", GUILD_ID),
        ("ATELIER_DEV_GUILD", "12.5", GUILD_ID),
        ("ATELIER_DEV_GUILD", "1e18", GUILD_ID),
        ("ATELIER_DEV_GUILD", str(2**63), GUILD_ID),
        ("LOG_LEVEL", "loud", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_FORMAT", "logfmt", "must be text or json"),
        ("ATELIER_METRICS_PORT", "0", "must be a port number from 1 to 65535"),
        ("ATELIER_METRICS_PORT", "65536", "must be a port number from 1 to 65535"),
        ("ATELIER_METRICS_PORT", "http", "must be a port number from 1 to 65535"),
        ("ATELIER_METRICS_PORT", "-1", "must be a port number from 1 to 65535"),
        ("ATELIER_SHARDS", "2/4", "must be FIRST-LAST/COUNT; for shard 2 alone write 2-2/4"),
        ("ATELIER_SHARDS", "0-1", "must be FIRST-LAST/COUNT, the shards this process runs out of COUNT"),
        ("ATELIER_SHARDS", "0..1/4", "not '0..1/4'"),
        ("ATELIER_SHARDS", "-1-0/4", "must be FIRST-LAST/COUNT"),
        ("ATELIER_SHARDS", "2-1/4", "FIRST (2) must not be greater than LAST (1)"),
        ("ATELIER_SHARDS", "0-4/4", "LAST (4) must be less than COUNT (4): shards are numbered 0 to 3"),
        ("ATELIER_SHARDS", "0-0/0", "COUNT must be at least 1"),
        ("RUNWARE_API_KEY", "key-\udcff", "is not valid UTF-8"),
        ("ATELIER_DATABASE", "data/\udcff.sqlite3", "is not valid UTF-8"),
        ("ATELIER_DATABASE", "postgresql://db.example:0/atelier", "port 0"),
        ("ATELIER_DATABASE", "postgresql://bot@db.example:5432/", "without a database name"),
        ("ATELIER_DATABASE", "postgresql:///atelier", "without a host"),
        ("ATELIER_DATABASE", "postgresql://db.example:99999/atelier", "not a valid PostgreSQL URL"),
        ("ATELIER_DATABASE", "mysql://db.example/atelier", "not a mysql:// URL"),
    ],
)
def test_a_bad_environment_value_names_its_variable(variable: str, value: str, message: str) -> None:
    """`SettingsError` starts with the variable's name, on one line."""
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value, "ATELIER_CONFIG": str(CONFIG)})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("RUNWARE_API_URL", "http://127.0.0.1:9/v1/", "runware_api_url", "http://127.0.0.1:9/v1"),
        ("RUNWARE_API_URL", " https://[::1]:8443/v1 ", "runware_api_url", "https://[::1]:8443/v1"),
        ("DISCORD_API_BASE", "HTTP://localhost/api/v10", "discord_api_base", "HTTP://localhost/api/v10"),
        ("DISCORD_GATEWAY_URL", "ws://127.0.0.1:7000/", "discord_gateway_url", "ws://127.0.0.1:7000"),
        ("ATELIER_DEV_GUILD", " 123456789012345678 ", "dev_guild", 123456789012345678),
        ("ATELIER_DEV_GUILD", str(2**63 - 1), "dev_guild", 2**63 - 1),
        ("ATELIER_DATABASE", "db/x.sqlite3", "database", Path("db/x.sqlite3")),
        ("ATELIER_DATABASE", " postgresql://bot:pw@db.example:5432/atelier ", "database_url", PG_URL),
        ("ATELIER_DATABASE", "postgres://db.example/atelier", "database_url", "postgres://db.example/atelier"),
        ("ATELIER_DATABASE", "db/x.sqlite3", "database_url", None),
        ("LOG_LEVEL", " warning ", "log_level", "WARNING"),
        ("LOG_FORMAT", " JSON ", "log_format", "json"),
        ("ATELIER_METRICS_PORT", " 9464 ", "metrics_port", 9464),
        ("ATELIER_METRICS_PORT", "65535", "metrics_port", 65535),
        ("ATELIER_SHARDS", " 0-1/4 ", "shards", ShardRange(0, 1, 4)),
        ("ATELIER_SHARDS", "2-2/3", "shards", ShardRange(2, 2, 3)),
        ("ATELIER_SHARDS", "0-0/1", "shards", ShardRange(0, 0, 1)),
    ],
)
def test_a_good_environment_value_is_accepted_and_tidied(
    variable: str, value: str, attribute: str, expected: object
) -> None:
    """URLs with a host (and a valid port) pass and lose a trailing slash; ids and levels are trimmed."""
    settings = load_settings({variable: value, "ATELIER_CONFIG": str(CONFIG)})
    assert getattr(settings, attribute) == expected


def test_a_shard_range_lists_its_shards_and_only_the_one_with_shard_0_syncs_the_commands() -> None:
    """`1-3/4` runs shards 1, 2 and 3 and does not sync; `0-0/3` runs shard 0 and syncs; a guild's shard is
    Discord's `(guild_id >> 22) % count`."""
    later = load_settings({"ATELIER_SHARDS": "1-3/4", "ATELIER_CONFIG": str(CONFIG)}).shards
    first = load_settings({"ATELIER_SHARDS": "0-0/3", "ATELIER_CONFIG": str(CONFIG)}).shards
    assert later is not None and (later.ids, later.syncs_commands, str(later)) == ([1, 2, 3], False, "1-3/4")
    assert first is not None and (first.ids, first.syncs_commands, str(first)) == ([0], True, "0-0/3")
    assert [shard_of(guild_id, 3) for guild_id in (0, 1 << 22, 2 << 22, 3 << 22 | 12345)] == [0, 1, 2, 0]


DEFAULTS: list[tuple[str, str, object]] = [
    ("DISCORD_TOKEN", "discord_token", None),
    ("RUNWARE_API_KEY", "runware_api_key", None),
    ("RUNWARE_API_URL", "runware_api_url", "https://api.runware.ai/v1"),
    ("RUNBASE_API_KEY", "runbase_api_key", None),
    ("RUNBASE_API_URL", "runbase_api_url", "https://runbase.net/api/v1"),
    ("DISCORD_API_BASE", "discord_api_base", "https://discord.com/api/v10"),
    ("DISCORD_GATEWAY_URL", "discord_gateway_url", None),
    ("ATELIER_DATABASE", "database", Path("data/atelier.sqlite3")),
    ("ATELIER_CONFIG", "config_path", Path("config/atelier.toml")),
    ("ATELIER_DEV_GUILD", "dev_guild", None),
    ("LOG_LEVEL", "log_level", "INFO"),
    ("LOG_FORMAT", "log_format", "text"),
    ("ATELIER_METRICS_PORT", "metrics_port", None),
    ("ATELIER_SHARDS", "shards", None),
]


def test_every_variable_is_covered_here_and_documented_in_the_readme() -> None:
    """The table above, the settings and the README's configuration table name the same variables."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert {variable for variable, _, _ in DEFAULTS} == set(ENVIRONMENT_VARIABLES) == documented


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
@pytest.mark.parametrize(("variable", "attribute", "default"), DEFAULTS)
def test_an_empty_value_means_unset_for_every_variable(
    variable: str, attribute: str, default: object, blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`NAME=` (or blanks) is the same as leaving NAME out: the default applies, and nothing fails later."""
    monkeypatch.chdir(REPO_ROOT)  # the default ATELIER_CONFIG is relative to the working directory
    environ = {variable: blank} if variable == "ATELIER_CONFIG" else {variable: blank, "ATELIER_CONFIG": str(CONFIG)}
    settings = load_settings(environ)
    assert getattr(settings, attribute) == default
    assert settings.empty_variables == {variable}


@pytest.mark.parametrize(
    ("variable", "require"),
    [("DISCORD_TOKEN", "require_discord_token"), ("RUNWARE_API_KEY", "require_runware_key")],
)
def test_a_required_secret_that_is_empty_is_reported_as_empty(variable: str, require: str) -> None:
    """An empty token or key loads (`generate` needs no token), and asking for it says it is empty, not missing."""
    settings = load_settings({variable: "", "ATELIER_CONFIG": str(CONFIG)})
    with pytest.raises(SettingsError, match=rf"^{variable}: is empty, but it is required.*; set it in the environment"):
        getattr(settings, require)()
    unset = load_settings({"ATELIER_CONFIG": str(CONFIG)})
    with pytest.raises(SettingsError, match=rf"^{variable}: is required"):
        getattr(unset, require)()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No contract variable in the process environment except ATELIER_CONFIG; work in an empty folder."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATELIER_CONFIG", str(CONFIG))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_dotenv_file_with_empty_values_falls_back_to_the_defaults(clean_environment: Path) -> None:
    """A `.env` copied from config/.env.example with only the key filled in loads, with every default in place."""
    example = (REPO_ROOT / "config" / ".env.example").read_text(encoding="utf-8")
    dotenv = clean_environment / ".env"
    dotenv.write_text(
        example.replace("RUNWARE_API_KEY=\n", "RUNWARE_API_KEY=rw-key-1234\n") + "ATELIER_DATABASE=\nLOG_LEVEL=\n",
        encoding="utf-8",
    )
    settings = load_settings(env_file=dotenv)
    assert settings.require_runware_key() == "rw-key-1234"
    assert (settings.database, settings.log_level, settings.discord_token) == (DEFAULT_DATABASE, "INFO", None)
    assert settings.empty_variables == {"DISCORD_TOKEN", "ATELIER_DATABASE", "LOG_LEVEL"}


def test_a_dotenv_file_that_is_not_utf8_names_the_file_and_the_line(clean_environment: Path) -> None:
    """Latin-1 bytes in `.env` stop loading with one line naming the file and the line, not a traceback."""
    dotenv = clean_environment / ".env"
    dotenv.write_bytes(b"# comment\nLOG_LEVEL=debug\nRUNWARE_API_KEY=caf\xe9\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=dotenv)
    assert str(caught.value) == f"{dotenv}: is not valid UTF-8 (line 3); save it as UTF-8 text"


def test_a_dotenv_path_that_cannot_be_read_names_the_file(clean_environment: Path) -> None:
    """A `.env` that exists but cannot be read (here: a folder) stops loading with one line naming it."""
    dotenv = clean_environment / ".env"
    dotenv.mkdir()
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=dotenv)
    assert str(caught.value).startswith(f"{dotenv}: cannot be read: ")
    assert "\n" not in str(caught.value)


def test_the_process_environment_wins_over_the_dotenv_file(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable set in the environment overrides `.env`; an empty one in the environment still means unset."""
    dotenv = clean_environment / ".env"
    dotenv.write_text("LOG_LEVEL=debug\nATELIER_DEV_GUILD=42\n", encoding="utf-8")
    monkeypatch.setenv("LOG_LEVEL", "error")
    monkeypatch.setenv("ATELIER_DEV_GUILD", "")
    settings = load_settings(env_file=dotenv)
    assert settings.log_level == "ERROR"
    assert settings.dev_guild is None


def test_environment_values_are_tidied_and_secrets_stay_hidden() -> None:
    """URLs lose a trailing slash, an empty value counts as unset, and the repr never shows a secret."""
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


def test_the_postgresql_password_is_a_secret_the_log_filter_redacts() -> None:
    """A `postgresql://` URL's password joins the secrets every log line is scrubbed of; a URL without one adds none."""
    url = "postgresql://atelier:pg-secret-789@127.0.0.1:5432/atelier"
    environ = {"ATELIER_DATABASE": url, "DISCORD_TOKEN": "token-value-123", "ATELIER_CONFIG": str(CONFIG)}
    settings = load_settings(environ)
    assert settings.database_url == url
    assert sorted(settings.secret_values()) == ["pg-secret-789", "token-value-123"]
    bare = load_settings({"ATELIER_DATABASE": "postgresql://127.0.0.1/atelier", "ATELIER_CONFIG": str(CONFIG)})
    assert bare.secret_values() == []


def test_missing_secrets_are_reported_when_needed() -> None:
    """Without a token or key, settings load, and asking for one names the variable."""
    settings = load_settings({"ATELIER_CONFIG": str(CONFIG)})
    with pytest.raises(SettingsError, match=r"^DISCORD_TOKEN: is required to run the bot"):
        settings.require_discord_token()
    with pytest.raises(SettingsError, match=r"^RUNWARE_API_KEY: is required"):
        settings.require_runware_key()
