"""`ATELIER_SHARDS`: the gateway shards this process runs, as `FIRST-LAST/COUNT` (contract §5.4).

`0-1/4` runs shards 0 and 1 of 4; one shard is a range of one (`2-2/4`). Unset, one process runs all the shards
Discord recommends (`bot.discord.sharding`). A bad value is a configuration error (exit 2) naming the variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator

_FORM = re.compile(r"(\d+)-(\d+)/(\d+)")
USAGE = "FIRST-LAST/COUNT, the shards this process runs out of COUNT (for example 0-1/4, or 2-2/4 for one shard)"


@dataclass(frozen=True, slots=True)
class ShardRange:
    """Shards `first` to `last` (both included) of `count`."""

    first: int
    last: int
    count: int

    @property
    def ids(self) -> list[int]:
        """The shard ids this process runs, in order."""
        return list(range(self.first, self.last + 1))

    @property
    def syncs_commands(self) -> bool:
        """Whether this process syncs the slash commands: the one running shard 0, so exactly one process does."""
        return self.first == 0

    def __str__(self) -> str:
        return f"{self.first}-{self.last}/{self.count}"


def shard_of(guild_id: int, count: int) -> int:
    """Return the shard whose gateway connection receives a server's events: Discord's `(guild_id >> 22) % count`."""
    return (guild_id >> 22) % count


def parse_shards(value: Any) -> Any:
    """Turn `FIRST-LAST/COUNT` text into a `ShardRange`; `ValueError` says what is wrong."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    match = _FORM.fullmatch(text)
    if match is None:
        single = re.fullmatch(r"(\d+)/(\d+)", text)
        if single is not None:
            shard, count = single.groups()
            raise ValueError(f"must be FIRST-LAST/COUNT; for shard {shard} alone write {shard}-{shard}/{count}")
        raise ValueError(f"must be {USAGE}, not {text!r}")
    first, last, count = (int(part) for part in match.groups())
    if count < 1:
        raise ValueError("COUNT must be at least 1")
    if first > last:
        raise ValueError(f"FIRST ({first}) must not be greater than LAST ({last})")
    if last >= count:
        raise ValueError(f"LAST ({last}) must be less than COUNT ({count}): shards are numbered 0 to {count - 1}")
    return ShardRange(first, last, count)


ShardsSetting = Annotated[ShardRange | None, BeforeValidator(parse_shards)]
"""The type of `ATELIER_SHARDS`: a checked `ShardRange`, or None (unset: all shards Discord recommends)."""
