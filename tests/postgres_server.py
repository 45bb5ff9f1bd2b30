"""A throwaway PostgreSQL server for the tests, and the engine-parametrized `db` fixture built on it.

`postgres_server` (session scope) runs the machine's PostgreSQL binaries (`initdb`, `pg_ctl`: found on PATH, in
`/usr/local/bin`, or under `/usr/lib/postgresql/*/bin`) in a temporary folder, on a free port of 127.0.0.1, with
durability switched off (a test server), and stops it at the end. PostgreSQL refuses to run as root, so as root
(CI) the server runs as `nobody` through `runuser`. If it cannot be started, every test that asks for it FAILS
with the reason: a PostgreSQL test never skips silently.

Each test gets a database of its own, copied from a migrated template (`CREATE DATABASE ... TEMPLATE`), and
dropped after it.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from bot.storage.database import Database

ENGINES = ["sqlite", "postgresql"]
TEMPLATE = "atelier_template"
_numbers = itertools.count(1)


@dataclass
class PostgresServer:
    """A running server: where it listens, its super-user, and how to make a database for one test."""

    port: int
    user: str
    problem: str | None = None

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(_numbers)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")  # type: ignore[arg-type]
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = [f"/usr/local/bin/{name}", *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)]
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], as_user: list[str], cwd: Path) -> None:
    # From the server's own folder: the test's working folder may be closed to `nobody` (CI's is 0700, root's).
    result = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120, check=False, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def _start(folder: Path) -> tuple[PostgresServer, list[str], list[str]]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("initdb and pg_ctl were not found (install PostgreSQL's server binaries, 15 or later)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root: run them as nobody
        runuser = shutil.which("runuser") or shutil.which("setpriv")
        if runuser is None:
            raise RuntimeError("running as root, and neither runuser nor setpriv is there to drop to nobody")
        as_user = (
            [runuser, "-u", "nobody", "--"]
            if runuser.endswith("runuser")
            else [runuser, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
        )
        shutil.chown(folder, "nobody")
    folder.chmod(0o755)
    data = folder / "data"
    port = _free_port()
    _run(
        [initdb, "-D", str(data), "-A", "trust", "-U", "atelier", "-E", "UTF8", "--locale=C", "--no-sync"],
        as_user,
        folder,
    )
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        " -c full_page_writes=off -c max_connections=200"
    )
    stop = [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]
    _run(
        [pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o", options, "start"],
        as_user,
        folder,
    )
    return PostgresServer(port=port, user="atelier"), stop, as_user


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session's own, with the migrated template database; stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="atelier-pg-"))
    stop: list[str] = []
    as_user: list[str] = []
    try:
        server, stop, as_user = _start(folder)
        with server.admin() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")  # type: ignore[arg-type]

        async def migrate() -> None:
            async with await Database.open(server.url(TEMPLATE)):
                pass

        # Asked for from inside a running event loop (an async fixture): migrate on a thread with a loop of its own.
        with ThreadPoolExecutor(max_workers=1) as thread:
            thread.submit(asyncio.run, migrate()).result()
    except Exception as exc:  # the tests that need it fail with this reason
        server = PostgresServer(port=0, user="", problem=f"{type(exc).__name__}: {exc}")
    try:
        yield server
    finally:
        if stop:
            subprocess.run([*as_user, *stop], capture_output=True, timeout=60, check=False, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh migrated PostgreSQL database of this test's own (for tests that open several handles)."""
    if postgres_server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {postgres_server.problem}", pytrace=False)
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest_asyncio.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite file, for the tests of what only SQLite has (PRAGMAs, `transaction()`, the file itself)."""
    async with await Database.open(tmp_path / "atelier.sqlite3") as database:
        yield database


@pytest_asyncio.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A freshly migrated database on each engine: an SQLite file in the test's folder, or a PostgreSQL database."""
    if request.param == "sqlite":
        async with await Database.open(tmp_path / "atelier.sqlite3") as database:
            yield database
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {server.problem}", pytrace=False)
    name = server.create_database()
    try:
        async with await Database.open(server.url(name)) as database:
            yield database
    finally:
        server.drop_database(name)
