"""Consistent copies of the live database through SQLite's online backup API.

Two users: `atelier backup PATH`, and the copy the bot takes before it migrates an existing file.

In WAL mode the newest commits live in the `-wal` file until a checkpoint, so copying the `.sqlite3` file alone can
miss them or catch a page half written. `sqlite3.Connection.backup` reads through SQLite instead: the copy is one
committed state of the database, taken while the bot keeps writing (in WAL mode a reader never blocks the writer).
A copy is written to a hidden partial file beside its target and linked into place only when complete, so a failed
copy leaves nothing behind and an existing file is never overwritten. The copy uses the ordinary rollback journal
(`journal_mode = DELETE`): it is one self-contained file, with no `-wal` of its own.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.clock import utc_now

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
"""How long the copy waits for a checkpoint or a migration of the bot to let go of the file."""


class BackupError(Exception):
    """A backup that failed while copying (an I/O error, a full disk); `str()` is one line for the operator."""


class BackupRefusedError(BackupError):
    """A backup refused before anything was written.

    The target exists, its folder is missing or not writable, or there is no database to copy.
    """


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup wrote: the file, its size in bytes, and the schema version (`PRAGMA user_version`) it holds."""

    path: Path
    size: int
    version: int


def check_target(target: Path) -> None:
    """Raise `BackupRefusedError` unless `target` is a free name in an existing, writable folder."""
    if target.exists() or target.is_symlink():
        raise BackupRefusedError(f"{target} already exists; a backup never overwrites a file, choose a new name")
    folder = target.parent
    if not folder.is_dir():
        raise BackupRefusedError(f"the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BackupRefusedError(f"cannot write in the folder {folder}")


def backup_database(database: Path, target: Path) -> BackupInfo:
    """Copy the live database file `database` into the new file `target`, while the bot may be writing.

    Refuses (`BackupRefusedError`, nothing written, no database created) if `target` is taken or its folder unusable, or
    if `database` does not exist or is not an SQLite file. The copy is the committed state at the moment its read
    transaction began; the bot's later commits are not in it.
    """
    check_target(target)
    if not database.is_file():
        raise BackupRefusedError(f"there is no database at {database} (nothing to back up; check ATELIER_DATABASE)")
    try:
        source = _open_existing(database)
    except sqlite3.Error as exc:
        raise BackupRefusedError(f"cannot open the database {database}: {exc}") from exc
    try:
        try:
            _begin_snapshot(source)
        except sqlite3.DatabaseError as exc:
            raise BackupRefusedError(f"{database} is not a usable SQLite database: {exc}") from exc
        return copy_database(source, target)
    finally:
        source.close()


def _open_existing(database: Path) -> sqlite3.Connection:
    """Open an existing database file for the copy (mode=rw: a plain connect() would create an empty one)."""
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
    source.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return source


def _begin_snapshot(source: sqlite3.Connection) -> None:
    """Open a read transaction whose first read fixes the snapshot the whole copy is taken from."""
    source.execute("BEGIN")
    source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()


def copy_database(source: sqlite3.Connection, target: Path) -> BackupInfo:
    """Copy what `source` sees into the new file `target`; inside a read transaction, exactly that snapshot.

    `source` must not hold a write transaction (SQLite's backup cannot read from a connection that is writing).
    Raises `BackupRefusedError` if `target` appeared meanwhile, `BackupError` if the copy failed; either way nothing is
    left at `target` or beside it.
    """
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        try:
            destination = sqlite3.connect(partial, isolation_level=None)
            try:
                source.backup(destination)
                destination.execute("PRAGMA journal_mode = DELETE")
                version = int(destination.execute("PRAGMA user_version").fetchone()[0])
            finally:
                destination.close()
        except sqlite3.Error as exc:
            raise BackupError(f"the copy to {target} failed: {exc}") from exc
        try:
            os.link(partial, target)  # fails if the name was taken meanwhile: never overwrite
        except FileExistsError as exc:
            raise BackupRefusedError(f"{target} already exists; a backup never overwrites a file") from exc
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from exc
            os.rename(partial, target)  # a file system without hard links
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
    return BackupInfo(path=target, size=target.stat().st_size, version=version)


def is_fresh(conn: sqlite3.Connection) -> bool:
    """Say whether the file has no schema yet (version 0 and nothing in it): a new database needs no backup."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    return version == 0 and conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0


def backup_before_migration(database: Path, current: int, goal: int) -> Path:
    """Copy `database` to `<name>.before-v<goal>.<UTC time>.bak` beside it, before migrating from `current`.

    Called while the migrating connection holds the write lock (`BEGIN IMMEDIATE`) and has written nothing yet, so
    this second connection copies exactly the state the migration starts from. Raises `BackupError` if the copy
    fails; the caller then does not migrate.
    """
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    target = database.with_name(f"{database.name}.before-v{goal}.{stamp}.bak")
    number = 1
    while target.exists():
        number += 1
        target = database.with_name(f"{database.name}.before-v{goal}.{stamp}-{number}.bak")
    source = _open_existing(database)
    try:
        _begin_snapshot(source)
        info = copy_database(source, target)
    finally:
        source.close()
    log.info(
        "database %s is at schema version %d; backed up to %s (%d bytes) before migrating to version %d",
        database,
        current,
        info.path,
        info.size,
        goal,
    )
    return info.path
