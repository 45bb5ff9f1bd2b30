"""`Metrics`: one Prometheus registry with everything the bot counts, and the process's current instance.

Hooks are plain method calls that only touch memory (no I/O), so calling them on the interaction path costs nothing
worth measuring. The composition root installs a fresh `Metrics` per bot (`install`); code that runs without it (the
CLI's `generate`, unit tests) feeds the default instance, which nobody serves.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.observability.health import Health

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of Prometheus' text exposition format."""

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
_PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The bot's metrics in their own registry (so several bots in one test process never share counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.health = Health()
        """Gateway and provider state, fed by the same hooks' callers; `/healthz` judges it."""
        gateway = Gauge("atelier_gateway_connected", "1 while the Discord gateway is connected.", registry=registry)
        gateway.set_function(lambda: float(self.health.gateway_connected))
        self.interactions = Counter(
            "atelier_interactions", "Interactions received from Discord, by type.", ["type"], registry=registry
        )
        self.ack_seconds = Histogram(
            "atelier_interaction_ack_seconds",
            "From an interaction's creation (its snowflake) to the bot's acknowledgement; Discord allows 3 s.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.job_transitions = Counter(
            "atelier_job_transitions",
            "Jobs entering a state (queued, submitted, succeeded, ...).",
            ["state"],
            registry=registry,
        )
        self.queue_length = Gauge("atelier_queue_length", "Jobs waiting for a slot in this process.", registry=registry)
        self.running_jobs = Gauge("atelier_running_jobs", "Jobs running in this process.", registry=registry)
        self.concurrency_limit = Gauge(
            "atelier_provider_concurrency_limit",
            "Tasks a provider may have at once now (the adaptive limit), by provider.",
            ["provider"],
            registry=registry,
        )
        self.provider_seconds = Histogram(
            "atelier_provider_request_seconds",
            "Duration of one request to the image provider, by task type and outcome.",
            ["task_type", "outcome"],
            buckets=_PROVIDER_BUCKETS,
            registry=registry,
        )
        self.spend = Counter(
            "atelier_spend_microdollars", "Money settled in the ledger, in micro-dollars.", registry=registry
        )
        self.rate_limited = Counter(
            "atelier_rate_limited",
            "HTTP 429 answers, by service (discord or runware).",
            ["service"],
            registry=registry,
        )

    # ------------------------------------------------------------------ hooks

    def interaction(self, kind: str) -> None:
        """Count one interaction of `kind` (application_command, component, modal_submit, autocomplete)."""
        self.interactions.labels(type=kind).inc()

    def acknowledged(self, seconds: float) -> None:
        """Record one acknowledgement `seconds` after the interaction was created."""
        self.ack_seconds.observe(max(0.0, seconds))

    def job_state(self, state: str) -> None:
        """Count one job entering `state`."""
        self.job_transitions.labels(state=state).inc()

    def provider_request(self, task_type: str, outcome: str, seconds: float) -> None:
        """Record one provider request: its task type, `ok` or the failure's class, and how long it took."""
        self.provider_seconds.labels(task_type=task_type, outcome=outcome).observe(seconds)

    def settled(self, micros: int) -> None:
        """Add one settlement (a charge in micro-dollars) to the spend."""
        if micros > 0:
            self.spend.inc(micros)

    def too_many_requests(self, service: str) -> None:
        """Count one HTTP 429 from `service` (`discord` or `runware`)."""
        self.rate_limited.labels(service=service).inc()

    def watch_queue(self, waiting: Callable[[], int], running: Callable[[], int]) -> None:
        """Read the queue length and the running jobs from these callables at every scrape."""
        self.queue_length.set_function(lambda: float(waiting()))
        self.running_jobs.set_function(lambda: float(running()))

    def watch_limit(self, provider: str, current: Callable[[], int]) -> None:
        """Read `provider`'s adaptive concurrency limit from `current` at every scrape."""
        self.concurrency_limit.labels(provider=provider).set_function(lambda: float(current()))

    def exposition(self) -> bytes:
        """Render the registry in Prometheus' text format."""
        return generate_latest(self.registry)


_current = Metrics()


def current() -> Metrics:
    """Return the metrics the hooks feed now."""
    return _current


def install(metrics: Metrics) -> Metrics:
    """Make `metrics` the current instance; return the one it replaces (to put back on shutdown)."""
    global _current  # one process-wide sink, swapped only by the composition root
    previous, _current = _current, metrics
    return previous
