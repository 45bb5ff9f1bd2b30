"""`Health`: is the bot able to do its work? Gateway connected, database reachable, provider reachable recently.

The gateway and the provider are known from events the bot sees anyway (the client's connect and disconnect, every
answer or failure of the provider's transport), so keeping them costs no I/O. The database is pinged only when
`/healthz` asks. The provider counts as reachable until a request fails without an answer (connection error,
timeout, a 5xx) and again from its next answer: an idle bot is healthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Ping = Callable[[], Awaitable[object]]
"""Something that proves the database answers (one trivial query), raising if it does not."""

DATABASE_TIMEOUT_SECONDS = 2.0
"""How long `/healthz` waits for the database before calling it unreachable."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of the checks: healthy or not, and one word or sentence per check."""

    healthy: bool
    checks: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        """Return the JSON body `/healthz` serves: the status, each check, and the names of the failed ones."""
        failed = [name for name, result in self.checks.items() if result != "ok"]
        return {"status": "ok" if self.healthy else "failing", "checks": self.checks, "failed": failed}


class Health:
    """What the bot knows about its connections, fed by hooks, judged on demand."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.gateway_connected = False
        self._provider_ok_at: float | None = None
        self._provider_failed_at: float | None = None
        self._provider_failure = ""

    # ------------------------------------------------------------------ hooks

    def gateway_up(self) -> None:
        """Record that the gateway session is ready (or resumed)."""
        self.gateway_connected = True

    def gateway_down(self) -> None:
        """Record that the gateway connection dropped."""
        self.gateway_connected = False

    def provider_answered(self) -> None:
        """Record that the provider answered a request (whatever it said, it is reachable)."""
        self._provider_ok_at = self._clock()

    def provider_unreachable(self, reason: str) -> None:
        """Record a provider request without a usable answer: a connection error, a timeout, a server error."""
        self._provider_failed_at = self._clock()
        self._provider_failure = reason

    # ------------------------------------------------------------------ verdict

    def provider_problem(self) -> str | None:
        """Why the provider counts as unreachable now, or None if it does not."""
        failed = self._provider_failed_at
        if failed is None or (self._provider_ok_at is not None and self._provider_ok_at >= failed):
            return None
        ago = self._clock() - failed
        return f"unreachable {ago:.0f}s ago ({self._provider_failure}), no answer since"

    async def check(self, ping: Ping, *, timeout: float = DATABASE_TIMEOUT_SECONDS) -> Verdict:  # noqa: ASYNC109
        """Run the checks: the gateway and provider from memory, the database with `ping` under `timeout`."""
        checks = {"gateway": "ok" if self.gateway_connected else "disconnected"}
        try:
            await asyncio.wait_for(ping(), timeout)
        except TimeoutError:
            checks["database"] = f"no answer within {timeout:g}s"
        except Exception as exc:  # any failure of the ping is the verdict, not an error of the endpoint
            checks["database"] = f"unreachable ({type(exc).__name__})"
        else:
            checks["database"] = "ok"
        checks["provider"] = self.provider_problem() or "ok"
        return Verdict(all(result == "ok" for result in checks.values()), checks)
