"""`AdaptiveLimit`: how many tasks a provider gets at once, adapted to how it copes (AIMD), within configured bounds.

The limit starts at the configured ceiling (`[limits] global_concurrency`, what the owner allows) so a burst runs as
fast as the provider takes it, and moves within `[limits] min_concurrency` .. that ceiling:

- it falls (multiplied by `backoff`, 0.5) when the provider pushes back: a 429 (queue full, rate limited) or a 503,
  or when its latency rises (the smoothed latency of its answers exceeds `latency_tolerance` times the steady
  latency, and by at least `latency_margin` seconds); at most once per `cooldown` seconds, since one overload
  usually hits many requests at once;
- it grows while the latency holds steady: by one for every `current // 4` answers (an additive increase of four
  steps per round of the window), back up to the ceiling.

Runware's guidance is to watch latency rather than wait for refusals; Runbase refuses past its rate limit. The
steady latency is the lowest smoothed latency seen, which drifts slowly up when the provider stays slower for good
(so a provider that got slower for everyone does not push the limit down forever).

There is one per provider (a lane): the scheduler asks the job's lane's `current` before every start
(`bot.jobs.scheduler.Scheduler` `lanes`); `subscribe` tells it when the limit rose so waiting jobs start at once. The
provider client reports through `on_answer` / `on_overload` (the `bot.runware.client.LoadSignals` protocol, which
`RunwareClient` and `RunbaseClient` both feed). The clock is injected, so the behaviour is deterministic in tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from bot.catalog import ProviderName
from bot.jobs.scheduler import JobScheduler, Scheduler
from bot.settings import LimitsConfig

log = logging.getLogger(__name__)

_SMOOTHING = 0.3
_BASELINE_DRIFT = 0.02
_GROWTH_DIVISOR = 4
"""The limit grows by one per `current // 4` steady answers: a quarter window, so it climbs back from a cut within a
few rounds rather than one step per round (classic AIMD), which would take thousands of answers from 16 to 64."""
_WARMUP = 3
"""Answers seen before a latency rise can count (the first few set the steady latency)."""


class AdaptiveLimit:
    """An AIMD concurrency limit for one provider; see the module docstring."""

    def __init__(
        self,
        *,
        minimum: int,
        maximum: int,
        name: str = "provider",
        clock: Callable[[], float] = time.monotonic,
        backoff: float = 0.5,
        cooldown: float = 1.0,
        latency_tolerance: float = 2.0,
        latency_margin: float = 0.5,
    ) -> None:
        if minimum < 1 or maximum < minimum:
            raise ValueError("the bounds must satisfy 1 <= minimum <= maximum")
        if not 0 < backoff < 1:
            raise ValueError("backoff must be between 0 and 1")
        self.minimum = minimum
        self.maximum = maximum
        self.name = name
        self._clock = clock
        self._backoff = backoff
        self._cooldown = cooldown
        self._tolerance = latency_tolerance
        self._margin = latency_margin
        self._limit = maximum
        self._credit = 0
        self._smoothed: float | None = None
        self._steady: float | None = None
        self._answers = 0
        self._last_decrease: float | None = None
        self._listeners: list[Callable[[], None]] = []
        self.decreases = 0
        """How many times the limit fell (for tests, logs and the benchmark)."""

    @property
    def current(self) -> int:
        """The number of tasks the provider may have at once now."""
        return self._limit

    @property
    def steady_latency(self) -> float | None:
        """The latency the provider answers with when it copes (seconds), once known."""
        return self._steady

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the limit rises (a scheduler starts waiting jobs then)."""
        self._listeners.append(listener)

    def on_answer(self, latency: float) -> None:
        """Record an answer that took `latency` seconds: grow while that holds steady, fall if it rises."""
        latency = max(0.0, latency)
        self._answers += 1
        smoothed = latency if self._smoothed is None else self._smoothed + _SMOOTHING * (latency - self._smoothed)
        self._smoothed = smoothed
        if self._steady is None or smoothed < self._steady:
            self._steady = smoothed
        else:
            self._steady += _BASELINE_DRIFT * (smoothed - self._steady)
        steady = self._steady
        rising = smoothed > steady * self._tolerance and smoothed - steady >= self._margin
        if rising and self._answers > _WARMUP:
            self._decrease(f"latency rose to {smoothed:.2f}s (steady {steady:.2f}s)")
        else:
            self._increase()

    def on_overload(self, status: int | None = None) -> None:
        """Record a refusal for overload (429, 503): fall, at most once per cooldown."""
        self._decrease(f"HTTP {status}" if status is not None else "overloaded")

    def _increase(self) -> None:
        if self._limit >= self.maximum:
            return
        self._credit += 1
        if self._credit < max(1, self._limit // _GROWTH_DIVISOR):
            return
        self._credit = 0
        self._limit += 1
        for listener in list(self._listeners):
            listener()

    def _decrease(self, why: str) -> None:
        now = self._clock()
        if self._last_decrease is not None and now - self._last_decrease < self._cooldown:
            return
        self._last_decrease = now
        before = self._limit
        self._limit = max(self.minimum, int(self._limit * self._backoff))
        self._credit = 0
        if self._limit < before:
            self.decreases += 1
            log.warning("%s concurrency %d -> %d: %s", self.name, before, self.current, why)


def provider_lanes(limits: LimitsConfig) -> dict[str, AdaptiveLimit]:
    """One adaptive limit per provider (by its stored name), within `[limits]` min_concurrency..global_concurrency."""
    return {
        provider.value: AdaptiveLimit(
            minimum=min(limits.min_concurrency, limits.global_concurrency),
            maximum=limits.global_concurrency,
            name=provider.label,
        )
        for provider in ProviderName
    }


S = TypeVar("S", bound=JobScheduler)


def with_lanes(build: Callable[[dict[str, Callable[[], int]]], S], lanes: Mapping[str, AdaptiveLimit]) -> S:
    """Build a scheduler (in-process or shared) with a lane per adaptive limit, woken whenever a limit rises.

    `build` gets the lanes (each provider's reader of its current limit) and returns the scheduler.
    """
    scheduler = build({provider: current_of(limit) for provider, limit in lanes.items()})
    for limit in lanes.values():
        limit.subscribe(scheduler.wake)
    return scheduler


def lane_scheduler(limits: LimitsConfig, lanes: Mapping[str, AdaptiveLimit]) -> Scheduler:
    """Return the fair in-process scheduler with a lane per adaptive limit, woken whenever a limit rises."""
    return with_lanes(
        lambda readers: Scheduler(limits.global_concurrency, limits.per_member_concurrency, lanes=readers), lanes
    )


def current_of(limit: AdaptiveLimit) -> Callable[[], int]:
    """Return a reader of the limit's current value: a lane's capacity for the scheduler, a gauge for the metrics."""
    return lambda: limit.current
