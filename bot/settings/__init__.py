"""Typed settings: environment (and `.env`) for secrets and endpoints, a TOML file for everything else.

Loaded once at start-up by the composition root; a missing or malformed value raises `SettingsError` with one line
naming the variable, which the CLI prints before exiting with status 2.

The TOML file is `ATELIER_CONFIG`, else `./config/atelier.toml` if it exists, else the package's copy of it
(`bot/defaults/atelier.toml`). Relative paths (`ATELIER_DATABASE`, `[paths]`) are from the working folder.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.catalog import (
    MAX_COUNT,
    MODEL_SPECS,
    Background,
    ModelName,
    OutputFormat,
    Period,
    ProviderName,
    Quality,
    Resolution,
    Routing,
    Size,
)
from bot.money import usd_to_micros
from bot.settings.database import DatabaseSetting, database_values, url_password
from bot.settings.dotenv import env_file_problem
from bot.settings.providers import ProvidersConfig, RunPricesConfig, build_routing, check_provider_orders
from bot.settings.shards import ShardRange, ShardsSetting

DEFAULT_RUNWARE_API_URL = "https://api.runware.ai/v1"
DEFAULT_RUNBASE_API_URL = "https://runbase.net/api/v1"
DEFAULT_DISCORD_API_BASE = "https://discord.com/api/v10"
DEFAULT_DATABASE = Path("data/atelier.sqlite3")
DEFAULT_CONFIG = Path("config/atelier.toml")
DEFAULT_OUTPUT = Path("out")
BUILTIN_CONFIG = "defaults/atelier.toml"
"""The default configuration inside the package (a resource of `bot`), used when no config file exists."""
BUILTIN_CONFIG_LABEL = "built-in defaults"


class SettingsError(Exception):
    """A setting is missing or malformed; `str()` is one line naming the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def _to_micros(value: Any) -> Any:
    if isinstance(value, str | int | float | Decimal) and not isinstance(value, bool):
        return usd_to_micros(value)
    return value


def _to_optional_micros(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _to_micros(value)


Micros = Annotated[int, BeforeValidator(_to_micros), Field(ge=0)]
"""A non-negative amount written in dollars in the TOML file, held as integer micro-dollars."""
OptionalMicros = Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(_to_optional_micros)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DefaultsConfig(_Section):
    """Request defaults used when a member leaves an option out."""

    model: ModelName = ModelName.GPT_IMAGE_1_MINI
    size: Size = Size.SQUARE
    quality: Quality = Quality.MEDIUM
    background: Background = Background.AUTO
    format: OutputFormat = OutputFormat.PNG
    count: int = Field(default=1, ge=1, le=MAX_COUNT)
    resolution: Resolution = Resolution.ONE_K
    """Used by models that offer a resolution (GPT Image 2); the others ignore it."""


class BudgetConfig(_Section):
    """Initial budget of a server that has not configured its own."""

    period: Period = Period.MONTH
    default_allowance: Micros = 1_000_000
    server_cap: OptionalMicros = None


class LimitsConfig(_Section):
    """Operational limits."""

    max_count: int = Field(default=MAX_COUNT, ge=1, le=MAX_COUNT)
    global_concurrency: int = Field(default=4, ge=1, le=64)
    """The most provider tasks at once: the ceiling of the adaptive limit (`bot.jobs.concurrency`), and its start."""
    min_concurrency: int = Field(default=1, ge=1, le=64)
    """The floor of the adaptive limit; above `global_concurrency` it is taken as `global_concurrency`."""
    per_member_concurrency: int = Field(default=2, ge=1, le=16)
    delivery_concurrency: int = Field(default=4, ge=1, le=64)
    """Jobs downloading, fitting and posting their results at once (each holds its images in memory meanwhile)."""
    confirm_above: Micros = 500_000
    max_prompt_chars: int = Field(default=32_000, ge=2, le=32_000)
    max_reference_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_reference_side: int = Field(default=2048, ge=256, le=4096)
    duplicate_window_seconds: float = Field(default=5.0, ge=0)
    progress_edit_seconds: float = Field(default=3.0, ge=1.0)
    status_after_seconds: float = Field(default=2.0, ge=0)  # "thinking…" until then (`bot.jobs.progress`)
    job_lease_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)  # the shared queue's lease (PostgreSQL)


class RunwareConfig(_Section):
    """Timeouts and retry policy for the Runware client."""

    request_timeout_seconds: float = Field(default=60.0, gt=0)
    task_timeout_seconds: float = Field(default=600.0, gt=0)
    poll_initial_delay_seconds: float = Field(default=2.0, ge=0)
    poll_max_interval_seconds: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=10)
    output_quality: int = Field(default=95, ge=20, le=99)


class ModerationConfig(_Section):
    """Moderated team channels: how long a held request waits for a moderator."""

    approval_timeout_hours: float = Field(default=24.0, gt=0)


ReplyEditing = Literal["auto", True, False]
"""`[discord] reply_editing`: "auto" asks for the Message Content intent when the developer portal allows it, true
insists on it (start-up fails if the portal does not allow it), false never asks."""


class DiscordConfig(_Section):
    """Discord behaviour switches."""

    reply_editing: ReplyEditing = "auto"


class InputPrice(_Section):
    """Input-token surcharges per image (GPT Image 1.5 bills prompt text and reference images)."""

    text_per_million_tokens: Micros = 0
    chars_per_token: int = Field(default=4, ge=1)
    per_reference_image: Micros = 0
    headroom_percent: int = Field(default=0, ge=0, le=100)


class PathsConfig(_Section):
    """Where the data and the terminal's images go; relative paths are relative to the working folder."""

    database: Path = DEFAULT_DATABASE
    """The SQLite file, unless `ATELIER_DATABASE` names another."""
    output: Path = DEFAULT_OUTPUT
    """Where `atelier generate` saves images unless `--out` names another folder."""


PriceTable = dict[ModelName, dict[Quality, dict[Size, Micros]]]


class AppConfig(_Section):
    """Everything from the TOML file."""

    defaults: DefaultsConfig = DefaultsConfig()
    budget: BudgetConfig = BudgetConfig()
    limits: LimitsConfig = LimitsConfig()
    runware: RunwareConfig = RunwareConfig()
    discord: DiscordConfig = DiscordConfig()
    paths: PathsConfig = PathsConfig()
    moderation: ModerationConfig = ModerationConfig()
    prices: PriceTable
    """Runware's price table (Runware reports the cost of each image; these are the estimates)."""
    input_prices: dict[ModelName, InputPrice] = {}
    providers: ProvidersConfig = {}
    """`[providers]`: each model's route order; a model left out gets the default of contract §5.4."""
    run_prices: RunPricesConfig = RunPricesConfig()
    """`[run_prices]`: fixed prices per run of providers that have them (Runbase)."""

    @field_validator("providers")
    @classmethod
    def _served_orders(cls, providers: ProvidersConfig) -> ProvidersConfig:
        return check_provider_orders(providers)

    @field_validator("prices")
    @classmethod
    def _complete_price_table(cls, prices: PriceTable) -> PriceTable:
        for model in MODEL_SPECS:  # the models Runware serves
            for quality in (Quality.LOW, Quality.MEDIUM, Quality.HIGH):
                for size in Size:
                    if size not in prices.get(model, {}).get(quality, {}):
                        raise ValueError(f'no price for prices."{model}".{quality}."{size}"')
        return prices

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> AppConfig:
        if self.defaults.count > self.limits.max_count:
            raise ValueError(f"defaults.count ({self.defaults.count}) is above limits.max_count")
        return self


_URL_SCHEMES = {
    "runware_api_url": ("http", "https"),
    "runbase_api_url": ("http", "https"),
    "discord_api_base": ("http", "https"),
    "discord_gateway_url": ("ws", "wss"),
}
MAX_SNOWFLAKE = 2**63 - 1
"""The largest Discord id (snowflake) accepted: ids are positive 63-bit integers."""


def parse_snowflake(value: object) -> int | None:
    """Return `value` (text or number) as a positive Discord id, or None if it is not one."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_SNOWFLAKE:
        return None
    return int(text)


class _Environment(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_TOKEN")
    runware_api_key: SecretStr | None = Field(default=None, validation_alias="RUNWARE_API_KEY")
    runware_api_url: str = Field(default=DEFAULT_RUNWARE_API_URL, validation_alias="RUNWARE_API_URL")
    runbase_api_key: SecretStr | None = Field(default=None, validation_alias="RUNBASE_API_KEY")
    runbase_api_url: str = Field(default=DEFAULT_RUNBASE_API_URL, validation_alias="RUNBASE_API_URL")
    discord_api_base: str = Field(default=DEFAULT_DISCORD_API_BASE, validation_alias="DISCORD_API_BASE")
    discord_gateway_url: str | None = Field(default=None, validation_alias="DISCORD_GATEWAY_URL")
    database: DatabaseSetting = Field(default=None, validation_alias="ATELIER_DATABASE")
    config_path: Path | None = Field(default=None, validation_alias="ATELIER_CONFIG")
    dev_guild: int | None = Field(default=None, validation_alias="ATELIER_DEV_GUILD")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field(default="text", validation_alias="LOG_FORMAT")
    metrics_port: int | None = Field(default=None, validation_alias="ATELIER_METRICS_PORT")
    shards: ShardsSetting = Field(default=None, validation_alias="ATELIER_SHARDS")

    _empty: frozenset[str] = PrivateAttr(default=frozenset())
    """Variables that were set to an empty (or blank) value, and so count as unset."""

    @model_validator(mode="wrap")
    @classmethod
    def _empty_is_unset(cls, data: Any, handler: ModelWrapValidatorHandler[_Environment]) -> _Environment:
        """Drop empty or blank values, so the default applies; remember which variables they were."""
        empty: set[str] = set()
        if isinstance(data, Mapping):
            empty = {str(name) for name, value in data.items() if isinstance(value, str) and not value.strip()}
            data = {name: value for name, value in data.items() if name not in empty}
        environment = handler(data)
        environment._empty = frozenset(empty)
        return environment

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # Bytes that are not UTF-8 reach os.environ as lone surrogates; they would fail later, far from the cause.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid UTF-8") from None
        return value

    @field_validator(*_URL_SCHEMES)
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        first, second = _URL_SCHEMES[info.field_name or ""]
        text = value.strip()
        problem = f"must be a URL starting with {first}:// or {second}:// and naming a host"
        parts = urlsplit(text)
        if parts.scheme.lower() not in (first, second) or not parts.hostname or any(c.isspace() for c in text):
            raise ValueError(problem)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError(f"{problem}, with a port from 1 to 65535")
        return text.rstrip("/")

    @field_validator("dev_guild", mode="before")
    @classmethod
    def _snowflake(cls, value: Any) -> Any:
        if value is None:
            return None
        guild_id = parse_snowflake(value)
        if guild_id is None:
            raise ValueError("must be a Discord server id (a positive whole number)")
        return guild_id

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        text = value.strip().lower()
        if text not in {"text", "json"}:
            raise ValueError("must be text or json")
        return text

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
            raise ValueError("must be a port number from 1 to 65535")
        return int(text)


_ENV_NAMES: dict[str, str] = {name: str(field.validation_alias) for name, field in _Environment.model_fields.items()}
"""Field name -> environment variable, for naming the variable in a `SettingsError`."""
ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(_ENV_NAMES.values())
"""Every environment variable the settings read (contract §5.1)."""


class Settings(BaseModel):
    """All settings of one run: environment values plus the parsed TOML file."""

    model_config = ConfigDict(frozen=True)

    discord_token: SecretStr | None
    runware_api_key: SecretStr | None
    runware_api_url: str
    runbase_api_key: SecretStr | None = None
    """The Runbase key (`RUNBASE_API_KEY`, contract §5.4); None: the Runbase provider is off."""
    runbase_api_url: str = DEFAULT_RUNBASE_API_URL
    discord_api_base: str
    discord_gateway_url: str | None
    database: Path
    """`ATELIER_DATABASE` (a path), else `[paths] database` (default `data/atelier.sqlite3`)."""
    database_url: str | None = None
    """`ATELIER_DATABASE` when it is a `postgresql://` URL: PostgreSQL instead of the SQLite file."""
    config_path: Path | None
    """The TOML file read; None when no file exists and the built-in defaults apply."""
    dev_guild: int | None
    log_level: str
    log_format: str = "text"
    """`text` (readable lines) or `json` (one JSON object per line), from `LOG_FORMAT`."""
    metrics_port: int | None = None
    """Where `/healthz` and `/metrics` are served on 127.0.0.1 (`ATELIER_METRICS_PORT`); None: not served."""
    shards: ShardRange | None = None
    """The gateway shards this process runs (`ATELIER_SHARDS`); None: one unsharded connection for every server."""
    app: AppConfig
    empty_variables: frozenset[str] = frozenset()
    """Variables set to an empty value, which count as unset (so their default applies)."""

    @property
    def config_source(self) -> str:
        """The config file read, or `built-in defaults`, as `check` and error lines name it."""
        return BUILTIN_CONFIG_LABEL if self.config_path is None else str(self.config_path)

    @property
    def configured_providers(self) -> tuple[ProviderName, ...]:
        """The providers whose API key is set, in the catalog's order."""
        keys = {ProviderName.RUNWARE: self.runware_api_key, ProviderName.RUNBASE: self.runbase_api_key}
        return tuple(provider for provider, key in keys.items() if key is not None)

    @property
    def database_target(self) -> Path | str:
        """What `Database.open` takes: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.database_url or self.database

    def routing(self) -> Routing:
        """Per model, the routes of the configured providers in `[providers]` order (contract §5.4 by default)."""
        return build_routing(self.configured_providers, self.app.providers)

    def require_discord_token(self) -> str:
        """Return the bot token, or raise `SettingsError` if it is not set (or set but empty)."""
        if self.discord_token is None:
            raise SettingsError("DISCORD_TOKEN", self.missing("DISCORD_TOKEN", " to run the bot"))
        return self.discord_token.get_secret_value()

    def require_runware_key(self) -> str:
        """Return the Runware API key, or raise `SettingsError` if it is not set (or set but empty)."""
        if self.runware_api_key is None:
            raise SettingsError("RUNWARE_API_KEY", self.missing("RUNWARE_API_KEY"))
        return self.runware_api_key.get_secret_value()

    def require_runbase_key(self) -> str:
        """Return the Runbase API key, or raise `SettingsError` if it is not set (or set but empty)."""
        if self.runbase_api_key is None:
            raise SettingsError("RUNBASE_API_KEY", self.missing("RUNBASE_API_KEY"))
        return self.runbase_api_key.get_secret_value()

    def secret_values(self) -> list[str]:
        """Every secret that is set (bot token, provider keys, PostgreSQL password), for the log filter to redact."""
        secrets = (self.discord_token, self.runware_api_key, self.runbase_api_key)
        password = url_password(self.database_url)
        return [secret.get_secret_value() for secret in secrets if secret is not None] + (
            [password] if password else []
        )

    def missing(self, variable: str, purpose: str = "") -> str:
        """Say that a required variable is not set (or set but empty), and where to set it."""
        state = "is empty, but it is required" if variable in self.empty_variables else "is required"
        return f"{state}{purpose}; set it in the environment or .env"


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return location, message


def builtin_config_text() -> str:
    """Return the annotated default configuration that ships inside the package (what `atelier init` writes)."""
    return resources.files("bot").joinpath(BUILTIN_CONFIG).read_text(encoding="utf-8")


def load_app_config(path: Path | None) -> AppConfig:
    """Read and validate the TOML file; None reads the built-in defaults."""
    try:
        text = builtin_config_text() if path is None else path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SettingsError("ATELIER_CONFIG", f"file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError("ATELIER_CONFIG", f"cannot read {path or BUILTIN_CONFIG_LABEL}: {exc}") from exc
    return parse_app_config(text, BUILTIN_CONFIG_LABEL if path is None else str(path))


def parse_app_config(text: str, source: str) -> AppConfig:
    """Validate TOML text; `source` names it in the `SettingsError`."""
    try:
        # Decimal, never float: amounts written as bare numbers (0.011) reach `usd_to_micros` exactly as written.
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("ATELIER_CONFIG", f"{source} is not valid TOML: {exc}") from exc
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        location, message = _first_error(exc)
        raise SettingsError("ATELIER_CONFIG", f"{source}: {location}: {message}") from exc


def config_file(configured: Path | None) -> Path | None:
    """Pick the TOML file: `ATELIER_CONFIG`, else `config/atelier.toml` if it exists, else None (built-in)."""
    if configured is not None:
        return configured
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_settings(environ: Mapping[str, str] | None = None, *, env_file: Path | None = Path(".env")) -> Settings:
    """Build settings from the environment (or `environ`), an optional `.env` file and the TOML file.

    An empty value counts as unset, so the default applies. With `environ` given, neither the process environment
    nor a `.env` file is read.
    """
    try:
        if environ is None:
            if env_file is not None and (problem := env_file_problem(env_file)) is not None:
                raise SettingsError(str(env_file), problem)
            env = _Environment(_env_file=env_file)
        else:
            env = _Environment.model_validate({name: environ[name] for name in _ENV_NAMES.values() if name in environ})
    except ValidationError as exc:
        location, message = _first_error(exc)
        field = location.split(".")[0]
        variable = _ENV_NAMES.get(field, field)
        raise SettingsError(variable, message) from exc
    except (OSError, UnicodeDecodeError) as exc:  # the .env file changed under us after the check
        raise SettingsError(str(env_file), f"cannot be read: {exc}") from exc
    path = config_file(env.config_path)
    app = load_app_config(path)
    values = env.model_dump() | {"config_path": path, **database_values(env.database, app.paths.database)}
    return Settings(**values, app=app, empty_variables=env._empty)
