"""A server's own generation options: defaults for the options a member leaves out, and its request limits.

Each value is the server's if its admins set one (`/settings defaults`, `/settings limits`), else the config file's
(`[defaults]`, `[limits]`). The config's `limits.max_count` is also a ceiling: a server may allow fewer images per
request, never more, and a stored limit above a later-lowered config value gives way to it. What an option resolves
to for a member is `bot.jobs.requests.resolve_defaults` (member, then server, then config), fed from here.

Rows are read through a small in-process cache (`bot.moderation.policy.PolicyCache`, as the servers' rules are):
every change goes through this object, which drops the cached row once its transaction has ended, so admission does
not pay a database trip per request for a row that almost never changes, and requests that miss it at once share
one read. A change whose caller is cancelled while it is being written may still commit (a unit of work that has
started always completes): the row is dropped once the write has ended all the same, so the next read asks the
database rather than serving the old row until a restart. Every change is recorded in `audit_log` in its own
transaction; on PostgreSQL that transaction also NOTIFYs the other processes, which drop their cached row
(`invalidate`, wired by `bot.jobs.shared.share_caches`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from bot.billing.inputs import check_amount, check_id
from bot.catalog import MAX_COUNT, Background, ModelName, OutputFormat, Quality, Size
from bot.clock import utc_now
from bot.errors import InvalidRequestError
from bot.moderation.policy import PolicyCache
from bot.money import format_usd
from bot.settings import AppConfig, DefaultsConfig
from bot.storage.audit import AuditQueries
from bot.storage.database import Database
from bot.storage.rows import OptionDefaults, StoredOptions
from bot.storage.servers import ServerOptionsQueries, ServerOptionsRepository

_T = TypeVar("_T")
_MEMBER, _SERVER, _CONFIG = 2, 1, 0
"""Where a resolved option came from, strongest first."""


TRANSPARENT_JPG = "A transparent background needs the png or webp format: jpg has no transparency."


class Source(StrEnum):
    """Where an effective setting comes from."""

    SERVER = "server"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class Effective(Generic[_T]):
    """One setting as it applies now: its value, where it comes from, and why it differs from that source (if so)."""

    value: _T
    source: Source
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The limits a request in one server is admitted under."""

    max_count: int
    confirm_above: int
    """Micro-dollars: a larger estimate asks the member to confirm first."""


@dataclass(frozen=True, slots=True)
class EffectiveOptions:
    """Every generation setting of a server as it applies now, each with its source, and the stored row."""

    guild_id: int
    stored: StoredOptions | None
    model: Effective[ModelName]
    size: Effective[Size]
    quality: Effective[Quality]
    background: Effective[Background]
    format: Effective[OutputFormat]
    count: Effective[int]
    max_count: Effective[int]
    confirm_above: Effective[int]

    @property
    def options(self) -> ResolvedOptions:
        """What a request that leaves every option out gets."""
        return ResolvedOptions(
            model=self.model.value,
            size=self.size.value,
            quality=self.quality.value,
            background=self.background.value,
            format=self.format.value,
            count=self.count.value,
        )

    @property
    def limits(self) -> ServerLimits:
        """The limits requests are admitted under."""
        return ServerLimits(self.max_count.value, self.confirm_above.value)


def _parse(enum: type[_E], name: str, value: _E | str | None) -> _E | None:
    return None if value is None else parse_option(enum, name, value)


def _noted(value: _T, source: Source, wanted: _T, why: str) -> Effective[_T]:
    """Return `value` from `source`, noting why when it is not what that source asked for (`wanted`)."""
    return Effective(value, source, None if value == wanted else f"set to {_shown(wanted)}, {why}")


def _shown(value: object) -> str:
    return str(value.value) if isinstance(value, StrEnum) else str(value)


def _source(server_value: object) -> Source:
    return Source.CONFIG if server_value is None else Source.SERVER


class ServerOptions:
    """Reads and changes servers' generation defaults and limits; a server without its own uses the config file's."""

    def __init__(self, db: Database, config: AppConfig, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._rows = ServerOptionsRepository(db)
        # A tuple, so that "no row" (None) is a value the cache keeps.
        self.cache: PolicyCache[tuple[StoredOptions | None]] = PolicyCache(self._read)

    @property
    def ceiling(self) -> int:
        """The most images per request any server may allow: the config file's `limits.max_count`."""
        return self._config.limits.max_count

    # ------------------------------------------------------------------------------------------------- reading

    async def stored(self, guild_id: int) -> StoredOptions | None:
        """Return the server's own row (None: it never changed a default or a limit)."""
        return (await self.cache.get(guild_id))[0]

    async def _read(self, guild_id: int) -> tuple[StoredOptions | None]:
        return (await self._rows.get(guild_id),)

    async def effective(self, guild_id: int) -> EffectiveOptions:
        """Return every setting of the server as it applies now, each with its source."""
        return self._effective(guild_id, await self.stored(guild_id))

    async def limits(self, guild_id: int) -> ServerLimits:
        """Return the limits a request in this server is admitted under."""
        return (await self.effective(guild_id)).limits

    async def resolve(
        self,
        guild_id: int,
        *,
        model: ModelName | str | None = None,
        size: Size | str | None = None,
        quality: Quality | str | None = None,
        background: Background | str | None = None,
        format: OutputFormat | str | None = None,
        count: int | None = None,
    ) -> ResolvedOptions:
        """Fill the options a member left out: the member's choice, then the server's default, then the config's."""
        stored = await self.stored(guild_id)
        limits = self._effective(guild_id, stored).limits
        return resolve_defaults(
            self._config.defaults,
            None if stored is None else stored.defaults,
            model=model,
            size=size,
            quality=quality,
            background=background,
            format=format,
            count=count,
            max_count=limits.max_count,
        )

    def _effective(self, guild_id: int, stored: StoredOptions | None) -> EffectiveOptions:
        """Combine a stored row (or none) with the config file into the settings that apply."""
        config = self._config
        row = stored or StoredOptions(guild_id)
        server = row.defaults
        ceiling = config.limits.max_count
        max_count = Effective(min(row.max_count or ceiling, ceiling), _source(row.max_count))
        if row.max_count is not None and row.max_count > ceiling:
            max_count = replace(max_count, note=f"set to {row.max_count}, but the bot allows at most {ceiling}")
        confirm_above = Effective(
            config.limits.confirm_above if row.confirm_above is None else row.confirm_above, _source(row.confirm_above)
        )
        options = resolve_defaults(config.defaults, server, max_count=max_count.value)
        wanted_background = server.background or config.defaults.background
        wanted_format = server.format or config.defaults.format
        wanted_count = server.count or config.defaults.count
        return EffectiveOptions(
            guild_id=guild_id,
            stored=stored,
            model=Effective(options.model, _source(server.model)),
            size=Effective(options.size, _source(server.size)),
            quality=Effective(options.quality, _source(server.quality)),
            background=_noted(
                options.background,
                _source(server.background),
                wanted_background,
                f"which jpg cannot show, so {options.background.value} is used",
            ),
            format=_noted(
                options.format,
                _source(server.format),
                wanted_format,
                f"which cannot be transparent, so {options.format.value} is used",
            ),
            count=_noted(
                options.count,
                _source(server.count),
                wanted_count,
                f"above the limit of {max_count.value} per request",
            ),
            max_count=max_count,
            confirm_above=confirm_above,
        )

    # ------------------------------------------------------------------------------------------------ changing

    async def change_defaults(
        self,
        guild_id: int,
        *,
        actor_id: int | None,
        reset: bool = False,
        model: ModelName | str | None = None,
        size: Size | str | None = None,
        quality: Quality | str | None = None,
        background: Background | str | None = None,
        format: OutputFormat | str | None = None,
        count: int | None = None,
    ) -> EffectiveOptions:
        """Set some of the server's defaults (after clearing all of them, with `reset`); return the new settings.

        Refused with `InvalidRequestError`, changing nothing: a value that is not offered, a count above the
        server's limit, or a transparent background with the jpg format among the server's own defaults.
        """
        guild, actor = check_id(guild_id, "server id"), _actor(actor_id)
        given = OptionDefaults(
            model=_parse(ModelName, "model", model),
            size=_parse(Size, "size", size),
            quality=_parse(Quality, "quality", quality),
            background=_parse(Background, "background", background),
            format=_parse(OutputFormat, "format", format),
            count=_check_count(count, "count"),
        )
        changes = {name: getattr(given, name) for name in _DEFAULT_NAMES if getattr(given, name) is not None}
        if not reset and not changes:
            return await self.effective(guild)
        at = self._clock()
        ceiling = self._config.limits.max_count

        def write(conn: sqlite3.Connection) -> StoredOptions | None:
            queries = ServerOptionsQueries(conn)
            current = queries.get(guild)
            base = OptionDefaults() if reset or current is None else current.defaults
            merged = replace(base, **changes)
            if merged.background is Background.TRANSPARENT and merged.format is OutputFormat.JPG:
                raise InvalidRequestError(TRANSPARENT_JPG)
            limit = min(ceiling, current.max_count or ceiling) if current is not None else ceiling
            if given.count is not None and given.count > limit:
                raise InvalidRequestError(
                    f"The default count can be at most {limit}, this server's limit of images per request "
                    f"(got {given.count})."
                )
            queries.save_defaults(guild, merged, at, actor)
            _audit(conn, guild, actor, "defaults", _defaults_words(current), _defaults_words(queries.get(guild)), at)
            return queries.get(guild)

        return await self._write(guild, write)

    async def change_limits(
        self,
        guild_id: int,
        *,
        actor_id: int | None,
        reset: bool = False,
        max_count: int | None = None,
        confirm_above: int | None = None,
    ) -> EffectiveOptions:
        """Set some of the server's limits (after clearing both, with `reset`); return the new settings.

        Refused with `InvalidRequestError`, changing nothing: a `max_count` above the config's (the bot-wide
        ceiling) or below the server's own default count, or a threshold that is negative or absurdly large.
        """
        guild, actor = check_id(guild_id, "server id"), _actor(actor_id)
        ceiling = self._config.limits.max_count
        new_max = _check_count(max_count, "max_count")
        if new_max is not None and new_max > ceiling:
            raise InvalidRequestError(
                f"This bot allows at most {ceiling} image{'s' if ceiling != 1 else ''} per request "
                f"(`[limits] max_count` in its config file); a server may set less, not more (got {new_max})."
            )
        threshold = None if confirm_above is None else check_amount(confirm_above, "confirmation threshold")
        if not reset and new_max is None and threshold is None:
            return await self.effective(guild)
        at = self._clock()

        def write(conn: sqlite3.Connection) -> StoredOptions | None:
            queries = ServerOptionsQueries(conn)
            current = queries.get(guild)
            kept_max = None if reset or current is None else current.max_count
            kept_threshold = None if reset or current is None else current.confirm_above
            merged_max = kept_max if new_max is None else new_max
            merged_threshold = kept_threshold if threshold is None else threshold
            own_count = None if current is None else current.defaults.count
            if merged_max is not None and own_count is not None and own_count > merged_max:
                raise InvalidRequestError(
                    f"This server's default count is {own_count}, above a limit of {merged_max}; lower it first "
                    "with `/settings defaults count`."
                )
            queries.save_limits(guild, merged_max, merged_threshold, at, actor)
            _audit(conn, guild, actor, "limits", _limits_words(current), _limits_words(queries.get(guild)), at)
            return queries.get(guild)

        return await self._write(guild, write)

    async def _write(
        self, guild_id: int, write: Callable[[sqlite3.Connection], StoredOptions | None]
    ) -> EffectiveOptions:
        """Run a change; the cached row is dropped once the write has ended, so the next read asks the database.

        That holds also when the caller is cancelled meanwhile (the write may still commit).
        """
        row = await self.cache.change(guild_id, self._db.run(write))
        return self._effective(guild_id, row)

    def invalidate(self, guild_id: int | None) -> None:
        """Forget the server's cached row (None: every server's), say after another process changed it."""
        self.cache.invalidate(guild_id)


_DEFAULT_NAMES = ("model", "size", "quality", "background", "format", "count")


def _defaults_words(row: StoredOptions | None) -> str | None:
    """Say a server's own defaults as an admin reads them (None: it has none)."""
    values = [] if row is None else [(name, getattr(row.defaults, name)) for name in _DEFAULT_NAMES]
    return ", ".join(f"{name} {_shown(value)}" for name, value in values if value is not None) or None


def _limits_words(row: StoredOptions | None) -> str | None:
    """Say a server's own limits as an admin reads them (None: it has none)."""
    values = [] if row is None else [("max_count", row.max_count), ("confirm_above", row.confirm_above)]
    words = [
        f"{name} {format_usd(value) if name == 'confirm_above' else value}"
        for name, value in values
        if value is not None
    ]
    return ", ".join(words) or None


def _audit(
    conn: sqlite3.Connection,
    guild: int,
    actor: int | None,
    setting: str,
    before: str | None,
    after: str | None,
    at: datetime,
) -> None:
    """Record a change of the server's generation settings in the change's transaction (nothing if unchanged)."""
    AuditQueries(conn).record_change(guild, actor, "settings", setting, before, after, at)


def _check_count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_COUNT:
        raise InvalidRequestError(f"{name} must be a whole number from 1 to {MAX_COUNT}, not {value!r}.")
    return value


def _actor(actor_id: int | None) -> int | None:
    return None if actor_id is None else check_id(actor_id, "admin id")


_E = TypeVar("_E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """Every request option with a value: what the member chose, else the server's default, else the config's."""

    model: ModelName
    size: Size
    quality: Quality
    background: Background
    format: OutputFormat
    count: int


_V = TypeVar("_V")


def resolve_defaults(
    config: DefaultsConfig,
    server: OptionDefaults | None = None,
    *,
    model: ModelName | str | None = None,
    size: Size | str | None = None,
    quality: Quality | str | None = None,
    background: Background | str | None = None,
    format: OutputFormat | str | None = None,
    count: int | None = None,
    max_count: int | None = None,
) -> ResolvedOptions:
    """Fill the options a member left out: their choice, then the server's defaults, then the config's `[defaults]`.

    Defaults give way rather than get a member's request refused for something the member did not ask for:
    - jpg has no alpha, so a transparent background and jpg cannot go together. When they meet, the value from the
      weaker source gives way (member, then server, then config): a format becomes png, a background becomes auto;
      from the same source the format gives way. Both chosen by the member are kept, so the request is refused with
      the model rule's clear message instead of silently changed.
    - A defaulted count above `max_count` (the server's limit) becomes `max_count`; a count the member chose is kept
      (admission then refuses it with the limit).
    Raises `InvalidRequestError` for a value that is not offered.
    """
    server = server or OptionDefaults()
    background_value, background_rank = _layer(background, server.background, config.background)
    format_value, format_rank = _layer(format, server.format, config.format)
    chosen_background = parse_option(Background, "background", background_value)
    chosen_format = parse_option(OutputFormat, "format", format_value)
    if chosen_background is Background.TRANSPARENT and chosen_format is OutputFormat.JPG:
        if format_rank < _MEMBER and format_rank <= background_rank:
            chosen_format = OutputFormat.PNG
        elif background_rank < format_rank:
            chosen_background = Background.AUTO
    count_value, count_rank = _layer(count, server.count, config.count)
    if max_count is not None and count_rank < _MEMBER:
        count_value = min(count_value, max_count)
    return ResolvedOptions(
        model=parse_option(ModelName, "model", _layer(model, server.model, config.model)[0]),
        size=parse_option(Size, "size", _layer(size, server.size, config.size)[0]),
        quality=parse_option(Quality, "quality", _layer(quality, server.quality, config.quality)[0]),
        background=chosen_background,
        format=chosen_format,
        count=count_value,
    )


def _layer(given: _V | None, server: _V | None, config: _V) -> tuple[_V, int]:
    if given is not None:
        return given, _MEMBER
    if server is not None:
        return server, _SERVER
    return config, _CONFIG


def parse_option(enum: type[_E], name: str, value: _E | str) -> _E:
    """Read one option value (an enum member, or its name in any case); `InvalidRequestError` lists the offered ones."""
    try:
        return enum(value.strip().lower() if isinstance(value, str) and not isinstance(value, enum) else value)
    except ValueError:
        offered = ", ".join(member.value for member in enum)
        raise InvalidRequestError(f"{name} {value!r} is not offered; choose one of {offered}.") from None
