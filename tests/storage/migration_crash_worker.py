"""Open a database with a deliberately slow, test-only migration after the shipped ones, so that the crash test can
SIGKILL the process while the migration transaction is open.

Usage: python -m tests.storage.migration_crash_worker DATABASE. The shipped migrations still pending run first, in
the same transaction, then the slow one: it creates a table, writes a row, and then computes forever. The line
`migrating` is printed when the slow migration starts, with every earlier pending migration already applied inside
the (uncommitted) transaction.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.storage import migrate
from bot.storage.database import Database

SLOW = migrate.Migration(
    version=migrate.latest_version() + 1,
    name="slow_test_only",
    sql=(
        "CREATE TABLE half_done (x INTEGER);\n"
        "INSERT INTO half_done VALUES (1);\n"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n;\n"
    ),
)


def main(path: Path) -> None:
    shipped = migrate.load_migrations()
    split = migrate.split_statements

    def announcing_split(script: str) -> list[str]:
        if script == SLOW.sql:
            print("migrating", flush=True)
        return split(script)

    migrate.load_migrations = lambda: [*shipped, SLOW]
    migrate.split_statements = announcing_split
    asyncio.run(Database.open(path))
    raise SystemExit("the never-ending migration ended")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
