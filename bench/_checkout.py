"""The benchmarks measure this checkout: refuse to run against another installed copy of the bot or the fakes.

A bench imports `bot` and `fakes` as installed packages (no `sys.path` edits), so a plain `pip install .` would make
it measure the copy in site-packages; `pip install -e '.[test]'` in the checkout makes both imports point here.
"""

from __future__ import annotations

from pathlib import Path

import bot
import fakes

ROOT = Path(__file__).resolve().parents[1]
"""The checkout the bench belongs to (its config file, and the `PYTHONPATH` of the bot it starts)."""


def require_this_checkout() -> None:
    """Exit with a one-line explanation unless `bot` and `fakes` are imported from this checkout."""
    for package in (bot, fakes):
        where = Path(package.__file__ or "").resolve().parent
        if not where.is_relative_to(ROOT):
            raise SystemExit(
                f"{package.__name__} is imported from {where}, not from this checkout ({ROOT}); "
                "run `pip install -e '.[test]'` in the checkout first"
            )
