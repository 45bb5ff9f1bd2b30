"""Logging: secrets never reach a log line, in messages, arguments or tracebacks."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.log import JsonFormatter, RedactSecrets, log_context, setup_logging

TOKEN = "MTIzNDU2Nzg5.Gabcde.discord-token-secret"
KEY = "rw-api-key-0123456789"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose one handler writes to a buffer through the redacting filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([TOKEN, KEY, "ab"]))
    logger = logging.getLogger("tests.log.captured")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_secrets_in_the_message_and_its_arguments_are_replaced(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Both the format string and the %-arguments are scrubbed; the rest of the line is kept."""
    logger, stream = captured
    logger.warning("POST with Bearer %s failed for token " + TOKEN, KEY)
    assert stream.getvalue() == "POST with Bearer *** failed for token ***\n"


def test_secrets_in_a_traceback_are_replaced(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """An exception whose text carries the key is logged with its traceback, the key scrubbed."""
    logger, stream = captured
    try:
        raise RuntimeError(f"rejected key {KEY}")
    except RuntimeError:
        logger.exception("request failed")
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError: rejected key ***" in text
    assert KEY not in text


def test_secrets_in_a_logged_stack_are_replaced(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """`stack_info=True` appends the current stack; a secret in it (here in a code object's file name) is scrubbed."""
    logger, stream = captured
    code = compile("logger.warning('where am I', stack_info=True)", f"<config {KEY}>", "exec")
    exec(code, {"logger": logger})  # a frame whose file name holds the key
    text = stream.getvalue()
    assert "Stack (most recent call last)" in text and 'File "<config ***>", line 1' in text
    assert KEY not in text


def test_short_values_are_not_treated_as_secrets(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A secret shorter than four characters would blank out ordinary words, so it is ignored."""
    logger, stream = captured
    logger.info("about cabbages")
    assert stream.getvalue() == "about cabbages\n"


def test_a_bad_format_string_does_not_raise_at_the_call_site(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A logging mistake is logged as it is (still scrubbed) instead of failing the code that logged it."""
    logger, stream = captured
    logger.error("job %d failed", f"not-a-number {KEY}")
    assert "job %d failed" in stream.getvalue()
    assert KEY not in stream.getvalue()


def test_setup_logging_installs_one_redacting_handler_on_the_root() -> None:
    """Every logger's records pass the root handler's filter, so no module can leak a secret by accident."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        setup_logging("WARNING", secrets=[KEY])
        [handler] = root.handlers
        stream = io.StringIO()
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        assert root.level == logging.WARNING
        logging.getLogger("bot.runware.client").warning("key %s", KEY)
        logging.getLogger("bot.runware.client").info("not shown %s", KEY)
        assert stream.getvalue().endswith("WARNING  bot.runware.client: key ***\n")
        assert KEY not in stream.getvalue() and "not shown" not in stream.getvalue()
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_interaction_and_webhook_tokens_are_replaced(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Tokens discord.py logs at DEBUG (in callback and webhook URLs, and in gateway payloads) are scrubbed."""
    logger, stream = captured
    logger.debug("POST /interactions/123/aW50ZXJhY3Rpb246MTIz/callback and /webhooks/4242/aW50ZXJhY3Rpb24/messages")
    logger.debug("event %s", {"d": {"token": "aW50ZXJhY3Rpb246MTIz", "id": "123"}})
    assert "aW50ZXJhY3Rp" not in stream.getvalue()
    assert "/interactions/123/***/callback" in stream.getvalue() and "'token': '***'" in stream.getvalue()


def test_json_lines_carry_the_job_and_guild_ids_from_the_context_or_the_call() -> None:
    """One JSON object per record; `log_context` and `extra=` add the ids; a traceback stays inside the line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets([KEY]))
    logger = logging.getLogger("tests.log.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with log_context(job_id="job-1", guild_id=7):
            logger.warning("with %s", KEY)
        logger.warning("explicit", extra={"job_id": "job-2", "guild_id": 8})
        try:
            raise ValueError(KEY)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["message"], first["job_id"], first["guild_id"], first["level"]) == ("with ***", "job-1", 7, "WARNING")
    assert (second["job_id"], second["guild_id"], second["logger"]) == ("job-2", 8, "tests.log.json")
    assert "job_id" not in third and "ValueError: ***" in third["exc_info"] and KEY not in stream.getvalue()
