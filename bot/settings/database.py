"""`ATELIER_DATABASE`: an SQLite file (a path) or a PostgreSQL server (`postgresql://USER:PASSWORD@HOST:PORT/DB`).

A PostgreSQL URL is checked here, before anything starts (scheme, host, port, database name: a bad one is a
configuration error, exit 2); whether the server answers is learned when the database is opened (exit 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator

POSTGRES_SCHEMES = ("postgresql", "postgres")


def parse_database(value: Any) -> Any:
    """Keep a PostgreSQL URL as checked text; any other text is a path."""
    if not isinstance(value, str):
        return value
    if "://" not in value:
        return Path(value)
    text = value.strip()
    scheme = text.split("://", 1)[0].lower()
    usage = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    if scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"must be a file path or a PostgreSQL URL ({usage}), not a {scheme}:// URL")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid PostgreSQL URL ({exc}); expected {usage}") from None
    if not parts.hostname or any(char.isspace() for char in text):
        raise ValueError(f"is a PostgreSQL URL without a host; expected {usage}")
    if port == 0:
        raise ValueError("is a PostgreSQL URL with port 0; the port must be from 1 to 65535")
    if not parts.path.strip("/"):
        raise ValueError(f"is a PostgreSQL URL without a database name; expected {usage}")
    return text


def database_values(value: Path | str | None, default: Path) -> dict[str, Path | str | None]:
    """Return `Settings`' `database` (the SQLite file) and `database_url` (the PostgreSQL URL or None)."""
    if isinstance(value, str):
        return {"database": default, "database_url": value}
    return {"database": value or default, "database_url": None}


def url_password(url: str | None) -> str | None:
    """Return the password in a PostgreSQL URL (a secret the log filter must redact), or None."""
    if url is None:
        return None
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


DatabaseSetting = Annotated[Path | str | None, BeforeValidator(parse_database)]
"""The type of `ATELIER_DATABASE`: a `Path` (SQLite) or a checked PostgreSQL URL (`str`)."""
