"""The `.env` file's own check: readable and UTF-8 text, said before pydantic-settings reads it."""

from __future__ import annotations

from pathlib import Path


def env_file_problem(path: Path) -> str | None:
    """Say why a `.env` that exists cannot be read as UTF-8 text; None when it is fine or does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"is not valid UTF-8 (line {line}); save it as UTF-8 text"
    return None
