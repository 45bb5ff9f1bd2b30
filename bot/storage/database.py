"""The SQLite database: one aiosqlite connection in WAL mode, migrated on open, with atomic units of work.

`Repository` (at the end) is the generic async face of a query class: one query per unit of work.

Every coroutine shares one connection, whose statements run on aiosqlite's single worker thread. Each aiosqlite call
is a round trip between the event loop and that thread, so a ledger operation written as eight awaited statements
spends most of its time hopping (about 1,150 transactions/s measured on the 2-core target, against ~11,000/s for
the same statements run as one function; docs/benchmarks.md). So the unit of work is a function:
`Database.run(fn)` ships `fn(conn)` to the worker thread and runs it atomically.

Group commit: units that arrive while the thread is busy are queued and run next as one batch, in one
`BEGIN IMMEDIATE` transaction, each unit inside its own `SAVEPOINT`. A unit that raises is rolled back to its
savepoint alone (nothing it did survives, the others are untouched), and no caller hears of success before the
batch's `COMMIT` has returned; if the commit fails, every unit in the batch fails. Each unit is therefore atomic,
isolated (units run one after another) and durable when acknowledged, exactly as if it had its own transaction,
while the batch shares one commit and one thread round trip. With a single caller every batch holds one unit.

`synchronous = NORMAL` in WAL mode: a commit is in the WAL (the OS page cache) before `COMMIT` returns, so it
survives the process being killed; only a power cut or kernel crash can lose the last commits, and never corrupts
the file.

PostgreSQL (`Database.open("postgresql://...")`): the same design on a psycopg 3 connection in autocommit mode, run
on a worker thread of its own (`_PgWorker`); the units, their savepoints and the group commit are the same code, and
`bot.storage.postgres.PgConnection` translates SQLite's dialect in one place.

Several processes on one PostgreSQL database: a unit names the budget locks it needs (`run(fn, locks=[guild_id])`,
the ledger's reservations, settlements, releases, refits and grants). On PostgreSQL the batch takes them as advisory
transaction locks (`pg_advisory_xact_lock`), all of the batch's at once, in ascending order, right after `BEGIN` and
before any unit runs: a unit's reads then see every change committed under the same lock, and two processes' batches
take their locks in one global order, so they can wait for each other but never deadlock on them. The locks end with
the batch's transaction. A unit that still meets a deadlock or a serialization failure (say on rows some other unit
locked) is rolled back to its savepoint; the units before it are committed and it runs again in a new transaction,
up to `bot.storage.batches.RETRIES` times (the batch itself runs in `bot.storage.batches`). On SQLite `locks` is
ignored: `BEGIN IMMEDIATE` already takes the file's one write lock, across processes too.
The shared job queue and its wake-ups are `bot.storage.queue` and `bot.storage.notify`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import aiosqlite
import psycopg

from bot.errors import first_line
from bot.storage.backup import BackupError, backup_before_migration, is_fresh
from bot.storage.batches import Outcome, Unit, rollback_quietly, run_alone, run_group
from bot.storage.migrate import MigrationError, apply_migrations, apply_pg_migrations
from bot.storage.postgres import PgConnection, PostgresUrlError, check_url, is_postgres_url, redact

log = logging.getLogger(__name__)

T = TypeVar("T")
Q = TypeVar("Q")

BUSY_TIMEOUT_MS = 5_000
"""How long a write waits for another process (say `atelier check`) to finish its own before failing."""

MAX_BATCH = 32
"""Most units committed together. A burst's 200 reservations in one batch kept every job's next write (the task UUID
before its provider request) waiting ~27 ms for all of them; 32 take ~4 ms, and reservations are deferrable."""


class DatabaseError(Exception):
    """The database file cannot be opened or used (not an SQLite file, not writable, WAL unavailable, closed)."""


class DatabaseUnreachableError(DatabaseError):
    """The PostgreSQL server cannot be reached or refuses the connection (exit 1, like a network failure)."""


class _PgWorker:
    """One PostgreSQL connection and the one thread its statements run on."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atelier-postgres")

    def submit(self, fn: Callable[[], Any]) -> Awaitable[Any]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def close(self) -> None:
        await self.submit(self.conn.close)
        self._executor.shutdown(wait=False)


class Database:
    """One SQLite file, opened, configured and migrated; the only way code reaches SQL."""

    def __init__(
        self,
        conn: aiosqlite.Connection | None,
        path: Path,
        version: int,
        *,
        group_commit: bool = True,
        postgres: _PgWorker | None = None,
    ) -> None:
        self._conn = conn
        self._postgres = postgres
        self._path = path
        self._version = version
        self._group_commit = group_commit
        self._lock = asyncio.Lock()
        self._pending: list[Unit] = []
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._batches: set[asyncio.Task[None]] = set()
        # aiosqlite offers no public "run this function on the connection's thread"; `_execute` is that primitive
        # (stable since 0.17; the dependency is pinned below 0.23 in pyproject.toml).
        self._submit: Callable[[Callable[[], Any]], Awaitable[Any]]
        if postgres is not None:
            self._submit = postgres.submit
        else:
            assert conn is not None
            self._submit = conn._execute

    @classmethod
    async def open(cls, path: Path | str, *, migrate_to: int | None = None, group_commit: bool = True) -> Database:
        """Create the parent folder, connect, set WAL, foreign keys and the busy timeout, and migrate.

        An existing file with data that is behind the schema is first copied beside itself
        (`<name>.before-v<N>.<UTC time>.bak`, `bot.storage.backup`); if that copy fails, nothing is migrated.

        `migrate_to` stops at an earlier schema version (for tests); `group_commit=False` gives every unit its own
        transaction (for comparison in the benchmark).
        """
        if is_postgres_url(path):
            return await cls._open_postgres(str(path), migrate_to=migrate_to, group_commit=group_commit)
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder of the database {target}: {exc.strerror or exc}") from exc
        try:
            conn = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database {target}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            submit: Callable[[Callable[[], Any]], Awaitable[Any]] = conn._execute
            version: int = await submit(lambda: _configure_and_migrate(conn._conn, target, migrate_to))
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, sqlite3.DatabaseError | MigrationError | DatabaseError | BackupError):
                raise DatabaseError(f"cannot use the database {target}: {exc}") from exc
            raise
        log.info("database %s open at schema version %d", target, version)
        return cls(conn, target, version, group_commit=group_commit)

    @classmethod
    async def _open_postgres(cls, url: str, *, migrate_to: int | None, group_commit: bool) -> Database:
        shown = redact(url)
        try:
            check_url(url)
        except PostgresUrlError as exc:
            raise DatabaseError(f"ATELIER_DATABASE {exc}") from exc
        executor = ThreadPoolExecutor(max_workers=1)
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, PgConnection.connect, url)
        except psycopg.Error as exc:
            reason = first_line(exc)
            raise DatabaseUnreachableError(f"cannot connect to the PostgreSQL database {shown}: {reason}") from exc
        finally:
            executor.shutdown(wait=False)
        worker = _PgWorker(conn)
        try:
            version: int = await worker.submit(lambda: apply_pg_migrations(conn, migrate_to))
        except BaseException as exc:
            await worker.close()
            if isinstance(exc, sqlite3.Error | MigrationError):
                raise DatabaseError(f"cannot use the database {shown}: {exc}") from exc
            raise
        log.info("database %s open at schema version %d", shown, version)
        return cls(None, Path(shown), version, group_commit=group_commit, postgres=worker)

    @property
    def engine(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self._postgres is None else "postgresql"

    @property
    def path(self) -> Path:
        """The database file (PostgreSQL: its URL without the password)."""
        return self._path

    @property
    def version(self) -> int:
        """The schema version (`PRAGMA user_version`) after migration."""
        return self._version

    async def close(self) -> None:
        """Refuse new work, finish what is queued or running, and close the connection."""
        if self._closed:
            return
        self._closed = True
        while True:
            async with self._lock:  # an open multi-statement transaction finishes first
                pass
            if not self._busy and not self._pending:
                break
            self._dispatch()
            await self._idle.wait()
        if self._postgres is not None:
            await self._postgres.close()
        else:
            assert self._conn is not None
            await self._conn.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def shared(self) -> bool:
        """Whether other processes may use this database at the same time (PostgreSQL), so `locks` matter."""
        return self._postgres is not None

    async def run(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
        locks: Sequence[int] = (),
        deferrable: bool = False,
    ) -> T:
        """Run `fn(conn)` on the connection's thread as one atomic unit; its changes are committed if it returns.

        If `fn` raises, everything it changed is rolled back and the exception re-raised here. `fn` must be quick,
        must not await, and must not issue BEGIN, COMMIT or ROLLBACK itself. `write=False` marks a read-only unit.
        A unit whose caller is cancelled before it starts is skipped; once started it completes regardless.
        `locks`: the advisory locks (64-bit keys; a server's budget is its guild id) held across processes from before
        `fn` starts until its transaction ends (PostgreSQL; see the module's notes). On PostgreSQL `fn` may run
        again after a deadlock, so it must not change anything but the database before it returns.
        `deferrable`: every unit queued later that is not deferrable may go first (deferrable units keep their order
        among themselves). For a unit that creates what no other unit touches yet: a new job's reservation, so that a
        burst's 200 reservations do not hold up the writes of jobs already admitted (each job's task UUID, stored just
        before its provider request). Batches hold at most `MAX_BATCH` units.
        """
        if self._closed:
            raise DatabaseError(f"the database {self._path} is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        unit = Unit(fn, write, future, tuple(locks), deferrable)
        if deferrable:
            self._pending.append(unit)
        else:  # ahead of the deferrable units, which always wait at the end of the queue
            self._pending.insert(self._leading(), unit)
        self._dispatch()
        return await future

    async def integrity_problems(self) -> list[str]:
        """Run SQLite's `PRAGMA integrity_check`; return what it found wrong (empty for a sound file)."""
        if self._postgres is not None:  # PostgreSQL checks its own pages; a round trip proves the server answers
            await self.run(lambda conn: conn.execute("SELECT 1").fetchone(), write=False)
            return []

        def check(conn: sqlite3.Connection) -> list[str]:
            messages = [str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall()]
            return [] if messages == ["ok"] else messages

        return await self.run(check, write=False)

    @asynccontextmanager
    async def transaction(self, *, immediate: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the connection for a transaction of several awaited statements; commit on exit, roll back on error.

        Prefer `run()`: every `await conn.execute(...)` here is a thread round trip while all other work waits.
        SQLite only: on PostgreSQL every unit goes through `run()`.
        """
        conn = self._conn
        if conn is None:
            raise DatabaseError("transaction() is SQLite's; on PostgreSQL run the unit of work with run()")
        await self._lock.acquire()
        try:
            while self._busy:
                await self._idle.wait()
            await conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
        finally:
            self._lock.release()
            self._dispatch()

    def _dispatch(self) -> None:
        if self._busy or self._lock.locked() or not self._pending:
            return
        batch: list[Unit] = []
        while self._pending and not batch:
            head, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            batch = [unit for unit in head if not unit.future.done()]
        if not batch:
            return
        self._busy = True
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(self._execute(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    def _leading(self) -> int:
        """How many units at the head of the queue are not deferrable (a new one queues behind them)."""
        count = 0
        for unit in self._pending:
            if unit.deferrable:
                break
            count += 1
        return count

    async def _execute(self, batch: list[Unit]) -> None:
        try:
            outcomes: list[Outcome] = await self._submit(lambda: self._run_batch(batch))
        except BaseException as exc:
            outcomes = [(False, exc)] * len(batch)
        finally:
            self._busy = False
            self._idle.set()
        for unit, (ok, value) in zip(batch, outcomes, strict=True):
            if unit.future.done():
                continue
            if ok:
                unit.future.set_result(value)
            else:
                unit.future.set_exception(value)
        self._dispatch()

    def _run_batch(self, batch: list[Unit]) -> list[Outcome]:
        """Run on the worker thread: the batch's units, each atomic, committed together (or each alone)."""
        conn: sqlite3.Connection
        if self._postgres is not None:
            conn = cast(sqlite3.Connection, self._postgres.conn)
        else:
            assert self._conn is not None
            conn = self._conn._conn
        shared = self._postgres is not None
        if not self._group_commit:
            return [run_alone(conn, unit, shared) for unit in batch]
        try:
            return run_group(conn, batch, shared)
        except BaseException as exc:
            # The connection itself failed mid-batch (say ROLLBACK TO hit an I/O error): keep none of the batch.
            rollback_quietly(conn)
            return [(False, exc)] * len(batch)


class Repository(Generic[Q]):
    """The async face of a query class (`JobQueries`, `MetaQueries`, ...): each call is one query in its own unit.

    A subclass names only the calls production code makes one at a time, each delegating in one line to a query
    method; code that composes queries in one transaction runs the query class in `Database.run`.
    """

    def __init__(self, db: Database, queries: Callable[[sqlite3.Connection], Q]) -> None:
        self._db = db
        self._queries = queries

    async def _read(self, query: Callable[[Q], T]) -> T:
        queries = self._queries
        return await self._db.run(lambda conn: query(queries(conn)), write=False)

    async def _write(self, query: Callable[[Q], T]) -> T:
        queries = self._queries
        return await self._db.run(lambda conn: query(queries(conn)))


def _configure_and_migrate(conn: sqlite3.Connection, path: Path, migrate_to: int | None) -> int:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise DatabaseError(f"the database cannot use WAL journaling (journal_mode is {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")

    def backup(current: int, goal: int) -> None:
        if not is_fresh(conn):  # read inside the migration's transaction: a new file needs no copy
            try:
                backup_before_migration(path, current, goal)
            except (BackupError, sqlite3.Error, OSError) as exc:
                raise BackupError(
                    f"cannot back it up before migrating from version {current}, so nothing was migrated: {exc}"
                ) from exc

    return apply_migrations(conn, migrate_to, before=backup)
