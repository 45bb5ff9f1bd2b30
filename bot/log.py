"""Logging set-up in one place, with a filter that keeps secrets out of every log line.

Two formats: `text` (one readable line per record) and `json` (`LOG_FORMAT=json`: one JSON object per line with
`time`, `level`, `logger`, `message`, and `job_id` / `guild_id` where the call knows them, from `extra=` or from
`log_context()`, which the job worker holds around each job's run). Secrets are scrubbed before either formatter
sees a record: the configured values, and the interaction and webhook tokens inside Discord URLs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"

LOG_FORMATS = ("text", "json")
"""The values `LOG_FORMAT` accepts."""

CONTEXT_FIELDS = ("job_id", "guild_id")
"""Fields a JSON line carries when the log call knows them (`extra=` wins over `log_context()`)."""

_TOKEN_IN_URL = re.compile(r"(/(?:interactions|webhooks)/\d+/)[A-Za-z0-9_.\-]{8,}")
"""An interaction or webhook token in a Discord URL (discord.py logs such URLs at DEBUG)."""

_TOKEN_IN_PAYLOAD = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")
"""A `token` field in a logged payload (discord.py logs every gateway event, interactions included, at DEBUG)."""

_context: ContextVar[Mapping[str, object]] = ContextVar("atelier_log_context", default={})  # noqa: B039 - never mutated


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Attach `fields` (e.g. `job_id`, `guild_id`; None values are left out) to every record logged inside."""
    token = _context.set({**_context.get(), **{key: value for key, value in fields.items() if value is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's rendered message, traceback and stack with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if len(secret) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, scrub it, and keep the record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in a log call must not turn into an error at the call site
            message = f"{record.msg} {record.args!r}"
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
            if record.stack_info:  # `log.info(..., stack_info=True)`: the stack shows source lines and can hold values
                record.stack_info = record.stack_info.replace(secret, "***")
        message = _TOKEN_IN_PAYLOAD.sub(r"\1***", _TOKEN_IN_URL.sub(r"\1***", message))
        if record.exc_text:
            record.exc_text = _TOKEN_IN_URL.sub(r"\1***", record.exc_text)
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, job and guild ids, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as one line of JSON (a traceback goes into `exc_info` as text, never on its own lines)."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, context.get(name))
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", *, secrets: Iterable[str] = (), log_format: str = "text") -> None:
    """Configure the root logger once: one stream handler, the given level and format, secrets redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord.http").setLevel(max(logging.getLevelName(level), logging.INFO))
