"""Copies of the project's config file with some values changed, for tests and benchmarks that start the bot."""

from __future__ import annotations

import re
from pathlib import Path


def project_config() -> Path:
    """Find the project's config file: beside this package in a checkout, else `config/atelier.toml` in the
    working directory (the fakes installed with `pip install .`, run from the checkout as the benchmarks are)."""
    for folder in (Path(__file__).resolve().parents[1], Path.cwd()):
        candidate = folder / "config" / "atelier.toml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("config/atelier.toml not found beside the fakes package nor in the working directory")


CONFIG = project_config()
"""The project's config file: it lists every setting, with its default."""


def copy_config(path: Path, changes: dict[str, str]) -> Path:
    """Write the project's config file to `path` with `{"section.key": "toml value"}` changes; return `path`.

    Every changed key must already be in the file, so a misspelt or removed setting fails loudly (ValueError).
    """
    section = ""
    done: set[str] = set()
    lines = []
    for line in CONFIG.read_text(encoding="utf-8").splitlines():
        header = re.fullmatch(r"\[([^\]]+)\]\s*", line)
        if header:
            section = header.group(1)
        match = re.match(r"([A-Za-z0-9_\"]+)\s*=", line)
        key = f"{section}.{match.group(1)}" if match else ""
        if match and key in changes:
            line = f"{match.group(1)} = {changes[key]}"
            done.add(key)
        lines.append(line)
    missing = set(changes) - done
    if missing:
        raise ValueError(f"not in {CONFIG.name}: {sorted(missing)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
