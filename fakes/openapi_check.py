"""Validation of REST traffic against Discord's official OpenAPI description (openapi-core).

The 1.2 MB spec (:data:`BUNDLED_SPEC`, unless ``$DISCORD_OPENAPI_SPEC`` names another) takes seconds to load, so
it is loaded lazily, at most once per process, and shared by every fake. When the file (or openapi-core) is missing,
:func:`skip_reason` says why and the checker validates nothing; tests that depend on validation call
``pytest.skip(skip_reason())``.

Deliberate tolerances, each documented behaviour that the spec does not express:

* discord.py sends ``attachments[].id`` as an integer (the file index); the spec says string, the docs accept both.
* multipart requests are validated through their ``payload_json`` part, which is what Discord parses.
* (replies only) field errors of a 400 carry string codes such as ``BASE_TYPE_MAX_LENGTH`` as in the docs' example,
  where the spec says integer.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLED_SPEC",
    "OpenAPIChecker",
    "default_spec_path",
    "get_checker",
    "skip_reason",
]

_API_HOST = "https://discord.com"


BUNDLED_SPEC = Path(__file__).resolve().parent / "discord" / "openapi" / "discord-openapi.json"
"""The copy of the spec shipped with the fakes (package data of ``fakes.discord``; its source and date are in the
README beside it), so a fresh clone and an installed copy validate without any set-up."""


def default_spec_path() -> Path:
    """Where the spec is: ``$DISCORD_OPENAPI_SPEC`` when set (a newer copy, say), else :data:`BUNDLED_SPEC`."""
    override = os.environ.get("DISCORD_OPENAPI_SPEC")
    if override:
        return Path(override)
    return BUNDLED_SPEC


@dataclass
class _Request:
    """The request shape openapi-core's ``Request`` protocol asks for."""

    method: str
    path: str
    parameters: Any
    body: bytes | None
    content_type: str
    host_url: str = _API_HOST


@dataclass
class _Response:
    """The response shape openapi-core's ``Response`` protocol asks for."""

    status_code: int
    data: bytes | None
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def _tolerate_attachment_ids(payload: Any) -> Any:
    """Return ``payload`` with integer ``attachments[].id`` turned into strings (the one known discord.py gap)."""
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    for key in ("attachments",):
        items = out.get(key)
        if isinstance(items, list):
            out[key] = [
                {**item, "id": str(item["id"])} if isinstance(item, dict) and isinstance(item.get("id"), int) else item
                for item in items
            ]
    inner = out.get("data")
    if isinstance(inner, dict):
        out["data"] = _tolerate_attachment_ids(inner)
    return out


def _numeric_error_codes(node: Any) -> Any:
    """``errors`` with every ``_errors[].code`` made numeric (the docs' examples use strings, the spec integers)."""
    if isinstance(node, dict):
        return {
            key: [{**item, "code": 0} for item in value]
            if key == "_errors" and isinstance(value, list)
            else _numeric_error_codes(value)
            for key, value in node.items()
        }
    return node


def _leaf_errors(errors: Any) -> list[Any]:
    """Flatten jsonschema errors through their ``anyOf``/``oneOf`` context down to the leaves."""
    leaves: list[Any] = []
    for error in errors:
        if error.context:
            leaves.extend(_leaf_errors(error.context))
        else:
            leaves.append(error)
    return leaves


def _describe(exc: BaseException) -> str:
    """One readable line for an openapi-core validation error, naming the most specific schema error behind it.

    For a union (``anyOf`` of callback or component types) the deepest leaf error is the useful one: it sits in the
    branch whose discriminator matched, while shallow ones only say "type is not 8".
    """
    cause: BaseException | None = exc
    for _ in range(6):
        if cause is None:
            break
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            leaves = _leaf_errors(schema_errors) or list(schema_errors)
            deepest = max(leaves, key=lambda e: len(e.absolute_path))
            location = "/".join(str(p) for p in deepest.absolute_path) or "<root>"
            message = deepest.message if len(deepest.message) <= 300 else deepest.message[:150] + "…"
            if deepest.validator in ("maxLength", "minLength") and isinstance(deepest.instance, str):
                message = f"length {len(deepest.instance)} breaks {deepest.validator} {deepest.validator_value}"
            return f"{type(exc).__name__} at {location}: {message}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}"[:600]


class OpenAPIChecker:
    """Validates requests the bot sent, and replies the fake gave, against the loaded spec."""

    def __init__(self, spec_path: Path) -> None:
        """Load the spec at ``spec_path``; on failure the checker is unavailable and says why."""
        self.spec_path = spec_path
        self.skip_reason: str | None = None
        self._openapi: Any = None
        if not spec_path.is_file():
            self.skip_reason = (
                f"Discord OpenAPI spec not found at {spec_path} (restore fakes/discord/openapi/discord-openapi.json "
                "or set DISCORD_OPENAPI_SPEC to a copy's path to enable request validation)"
            )
            return
        try:
            from openapi_core import OpenAPI
        except ImportError as exc:  # pragma: no cover - openapi-core is in the test extras
            self.skip_reason = f"openapi-core is not installed ({exc}); install the test extras"
            return
        try:
            self._openapi = OpenAPI.from_file_path(str(spec_path))
        except Exception as exc:
            self.skip_reason = f"could not load Discord OpenAPI spec {spec_path}: {type(exc).__name__}: {exc}"

    @property
    def available(self) -> bool:
        """Whether validation actually runs."""
        return self._openapi is not None

    def _request(
        self,
        method: str,
        api_path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        payload: Any,
        has_body: bool,
    ) -> _Request:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        body = json.dumps(_tolerate_attachment_ids(payload)).encode() if has_body else None
        params = RequestParameters(
            query=ImmutableMultiDict(list(query.items())),
            header=Headers(dict(headers)),
            cookie=ImmutableMultiDict(),
        )
        return _Request(
            method=method.lower(),
            path="/api/v10" + api_path,
            parameters=params,
            body=body,
            content_type="application/json",
        )

    def validate_request(
        self,
        method: str,
        api_path: str,
        *,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        payload: Any = None,
        has_body: bool = False,
    ) -> str | None:
        """Validate one request; ``api_path`` is the part after ``/api/v10``. Returns an error line or ``None``.

        ``payload`` is the parsed JSON body, or the parsed ``payload_json`` part of a multipart body.
        """
        if self._openapi is None:
            return None
        request = self._request(method, api_path, query, headers, payload, has_body)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Unsupported scheme type" for the OAuth2 scheme
                self._openapi.validate_request(request)
        except Exception as exc:
            return _describe(exc)
        return None

    def validate_response(
        self,
        method: str,
        api_path: str,
        *,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        payload: Any,
        has_body: bool,
        status: int,
        response_body: bytes | None,
        response_headers: Mapping[str, str],
    ) -> str | None:
        """Validate the fake's reply to one request against the spec. Returns an error line or ``None``."""
        if self._openapi is None:
            return None
        request = self._request(method, api_path, query, headers, payload, has_body)
        content_type = response_headers.get("Content-Type", "application/json")
        if response_body and status >= 400:
            body = json.loads(response_body)
            if isinstance(body, dict) and "errors" in body:
                response_body = json.dumps({**body, "errors": _numeric_error_codes(body["errors"])}).encode()
        response = _Response(
            status_code=status,
            data=response_body,
            content_type=content_type,
            headers=dict(response_headers),
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self._openapi.validate_response(request, response)
        except Exception as exc:
            return _describe(exc)
        return None


_lock = threading.Lock()
_checkers: dict[Path, OpenAPIChecker] = {}


def get_checker(spec_path: Path | None = None) -> OpenAPIChecker:
    """The process-wide checker for ``spec_path`` (default :func:`default_spec_path`), loaded on first use."""
    path = (spec_path or default_spec_path()).resolve()
    with _lock:
        checker = _checkers.get(path)
        if checker is None:
            checker = _checkers[path] = OpenAPIChecker(path)
        return checker


def skip_reason(spec_path: Path | None = None) -> str | None:
    """Why validation cannot run (``None`` when it can). Loads the spec if that has not happened yet."""
    return get_checker(spec_path).skip_reason
