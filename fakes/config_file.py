"""Copies of the project's config file with some values changed, for tests and benchmarks that start the bot."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path


@cache
def project_config() -> Path:
    """Find the project's config file, which lists every setting with its default.

    It is beside this package in a checkout; a copy of the fakes installed with `pip install .` looks in the working
    directory and then its parents (the benchmarks run from the checkout). Looked up when first needed, so importing
    the fakes works anywhere.
    """
    here = Path(__file__).resolve().parents[1]
    cwd = Path.cwd().resolve()
    for folder in (here, cwd, *cwd.parents):
        candidate = folder / "config" / "atelier.toml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "config/atelier.toml is neither beside the fakes package nor in or above the working folder"
    )


def copy_config(path: Path, changes: dict[str, str]) -> Path:
    """Write the project's config file to `path` with `{"section.key": "toml value"}` changes; return `path`.

    Every changed key must already be in the file, so a misspelt or removed setting fails loudly (ValueError).
    """
    section = ""
    done: set[str] = set()
    lines = []
    config = project_config()
    for line in config.read_text(encoding="utf-8").splitlines():
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
        raise ValueError(f"not in {config.name}: {sorted(missing)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
