"""`config/atelier.toml` is the annotated starting point for a server owner: its settings are explained in place, and
it cites only files that a clone of the repository has."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "config" / "atelier.toml"

_TABLE = re.compile(r"^\[(?P<name>[^\]]+)\]")
_KEY = re.compile(r"^(?P<key>[\w\"-]+)\s*=\s*(?P<rest>.*)$")
_CITED_FILE = re.compile(r"[\w./-]+/[\w.-]+\.(?:md|json|py|toml|sql)\b")


def test_every_setting_outside_the_price_tables_has_its_own_comment() -> None:
    """Each `key = value` has a comment on its line, except in `[prices.…]` (explained as a block above) and
    `[discord]` (its one switch has the block comment above it)."""
    table = ""
    uncommented = []
    for number, line in enumerate(CONFIG.read_text(encoding="utf-8").splitlines(), start=1):
        if header := _TABLE.match(line):
            table = header["name"].strip()
            continue
        key = _KEY.match(line)
        if key is None or table.startswith("prices.") or table == "discord":
            continue
        if "#" not in key["rest"] or not key["rest"].split("#", 1)[1].strip():
            uncommented.append(f"line {number}: [{table}] {key['key']}")
    assert uncommented == []


def test_files_cited_in_the_config_exist_in_the_repository() -> None:
    """A path named in a comment (say `docs/x.md`) is a file of the repository, not one beside a developer's clone."""
    text = CONFIG.read_text(encoding="utf-8")
    cited = set(_CITED_FILE.findall(text))
    missing = sorted(path for path in cited if not (REPO_ROOT / path).is_file())
    assert missing == []
