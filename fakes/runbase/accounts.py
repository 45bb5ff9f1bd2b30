"""The fake Runbase's keys and the one account behind them: balance, each key's limits, and the request ledger.

A key (`sk-…`) can be limited to some IP addresses, given a lifetime spend limit, a usage quota (runs; inferred:
the reference only names `USAGE_EXCEEDED`), or disabled. Every authenticated request is recorded with its arrival
time per key, rejected or not, and the rate limit counts them all: 20 per sliding 10 s by default (reference §5).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["KeyAccount", "RateWindow", "max_in_any_window"]


def max_in_any_window(times: list[float], window: float) -> int:
    """The most of `times` (seconds) that fall inside any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best = 0
    for start, moment in enumerate(ordered):
        end = bisect.bisect_left(ordered, moment + window, lo=start)
        best = max(best, end - start)
    return best


@dataclass(slots=True)
class RateWindow:
    """A sliding window: a request is refused when `limit` requests already arrived in the last `window` seconds."""

    limit: int = 20
    window: float = 10.0
    times: list[float] = field(default_factory=list)
    """Arrival times (monotonic seconds) of every request the key made, in order, refused ones included."""
    refused: int = 0

    def admit(self, now: float) -> bool:
        """Record a request arriving at `now`; True when it is within the limit."""
        start = bisect.bisect_right(self.times, now - self.window)
        recent = len(self.times) - start
        self.times.append(now)
        if recent >= self.limit:
            self.refused += 1
            return False
        return True


@dataclass(slots=True)
class KeyAccount:
    """One API key of the fake's account and the limits the owner set on it."""

    key: str
    spend_limit_micros: int | None = None
    """Lifetime spend limit of the key; a create whose price would pass it is 403 `api_key_spend_limit_exceeded`."""
    allowed_ips: frozenset[str] | None = None
    """When set, requests from any other address are 403 `ip_not_allowed`."""
    usage_limit: int | None = None
    """When set, the key may create this many runs; the next create is 429 `USAGE_EXCEEDED`."""
    disabled: bool = False
    """A disabled (or expired) key is 401 `invalid_api_key`."""
    spent_micros: int = 0
    """What runs of this key cost, refunds deducted."""
    runs_created: int = 0
    rate: RateWindow = field(default_factory=RateWindow)
