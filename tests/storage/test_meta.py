"""The `meta` key/value table, through the Discord client's `MetaRepository`."""

from __future__ import annotations

from bot.storage.database import Database
from bot.storage.meta import MetaRepository


async def test_meta_stores_replaces_and_deletes_values(db: Database) -> None:
    """Meta is a plain key/value table."""
    meta = MetaRepository(db)
    assert await meta.get("command_hash") is None
    await meta.set("command_hash", "one")
    await meta.set("command_hash", "two")
    assert await meta.get("command_hash") == "two"
    assert await meta.delete("command_hash")
    assert not await meta.delete("command_hash")
