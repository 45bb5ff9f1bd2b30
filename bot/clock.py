"""Time helpers: the one clock (aware UTC) and the integer Unix milliseconds the database stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
MS_PER_DAY = 86_400_000
"""Milliseconds in a UTC day; the ledger's daily totals are keyed by `effective_at // MS_PER_DAY`."""


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def to_ms(moment: datetime) -> int:
    """Convert an aware datetime to integer Unix milliseconds (exact, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("datetimes stored in the database must be timezone-aware")
    return (moment - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """Convert integer Unix milliseconds to an aware UTC datetime."""
    return _EPOCH + ms * _MS


def optional_from_ms(ms: int | None) -> datetime | None:
    """Convert a nullable milliseconds column: None stays None."""
    return None if ms is None else from_ms(ms)
