"""Open a database with a deliberately slow, test-only migration after the shipped ones, so that the crash test can
SIGKILL the process while the migration transaction is open.

Usage: python -m tests.storage.migration_crash_worker DATABASE. The shipped migrations still pending run first, in
the same transaction, then the slow one: it creates a table, writes a row, and then computes forever. The line
`migrating` is printed once SQLite has begun running that never-ending statement (seen through the connection's
trace callback), so every earlier statement, shipped or slow, has run inside the still uncommitted transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from bot.storage import database, migrate
from bot.storage.database import Database

FOREVER = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n;"
"""The slow migration's last statement: it never ends."""

SLOW = migrate.Migration(
    version=migrate.latest_version() + 1,
    name="slow_test_only",
    sql=f"CREATE TABLE half_done (x INTEGER);\nINSERT INTO half_done VALUES (1);\n{FOREVER}\n",
)


def main(path: Path) -> None:
    shipped = migrate.load_migrations()
    apply = database.apply_migrations

    def announce(statement: str) -> None:
        if statement == FOREVER:
            print("migrating", flush=True)

    def traced_apply(
        conn: sqlite3.Connection, target: int | None = None, *, before: migrate.BeforeMigrating | None = None
    ) -> int:
        conn.set_trace_callback(announce)
        return apply(conn, target, before=before)

    migrate.load_migrations = lambda: [*shipped, SLOW]
    database.apply_migrations = traced_apply  # the name Database.open migrates through
    asyncio.run(Database.open(path))
    raise SystemExit("the never-ending migration ended")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
