"""One process of the budget race: python -m tests.billing.race_worker URL SCENARIO FIRST COUNT.

Opens the database, prints `ready`, waits for a line on stdin (the start signal, so every process fires at once),
sends COUNT reservations numbered from FIRST at once (`tests.billing.race`), and prints how many were held.
"""

from __future__ import annotations

import asyncio
import sys

from bot.settings import load_app_config
from bot.storage.database import Database
from tests.billing.conftest import CONFIG_PATH
from tests.billing.race import reserve_many


async def main(url: str, scenario: str, first: int, count: int) -> None:
    config = load_app_config(CONFIG_PATH)
    async with await Database.open(url) as db:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        held = await reserve_many(db, config, scenario, range(first, first + count))
        print(held, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
