"""Every storage test that takes `db` runs on both engines, SQLite and PostgreSQL (`tests.postgres_server`);
`sqlite_db` is for what only SQLite has."""

from tests.postgres_server import db, sqlite_db

__all__ = ["db", "sqlite_db"]
