"""Fixtures for billing tests: the real config, a settable clock, and budgets and a ledger on a migrated file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.settings import AppConfig, load_app_config
from bot.storage.database import Database
from tests.postgres_server import db  # every billing test that takes `db` runs on SQLite and on PostgreSQL

__all__ = ["db"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH = ROOT / "config" / "atelier.toml"

GUILD = 111_111_111_111_111_111
MEMBER = 222_222_222_222_222_222
OTHER = 333_333_333_333_333_333
ROLE = 444_444_444_444_444_444
ROLE_2 = 555_555_555_555_555_555
ADMIN = 666_666_666_666_666_666


class Clock:
    """A clock the test moves by hand; calling it returns the current instant."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def config() -> AppConfig:
    """The shipped config/atelier.toml (default allowance $1.00 a month, no server cap)."""
    return load_app_config(CONFIG_PATH)


@pytest.fixture
def clock() -> Clock:
    """A clock standing at Wednesday 2025-01-15 12:00 UTC."""
    return Clock(datetime(2025, 1, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
def budgets(db: Database, config: AppConfig, clock: Clock) -> Budgets:
    """Budgets on the test database, with the config's defaults."""
    return Budgets(db, config, clock=clock)


@pytest.fixture
def ledger(db: Database, budgets: Budgets, clock: Clock) -> Ledger:
    """A ledger on the test database, reading the test clock."""
    return Ledger(db, budgets, clock=clock)
