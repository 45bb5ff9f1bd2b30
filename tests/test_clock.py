"""Time helpers: the integer milliseconds the database stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import from_ms, to_ms


def test_millisecond_timestamps_round_trip_exactly() -> None:
    """Datetimes survive the integer-milliseconds column unchanged; naive datetimes are refused."""
    moment = datetime(2031, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    assert from_ms(to_ms(moment)) == moment
    with pytest.raises(ValueError, match="timezone-aware"):
        to_ms(datetime(2025, 1, 1))  # noqa: DTZ001 (a naive datetime is what is refused)
