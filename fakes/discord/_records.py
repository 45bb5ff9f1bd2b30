"""What tests observe of the fake's traffic: each HTTP request (`RecordedRequest`, with its uploaded files), each
rule the bot broke (`RuleViolation`), and each request made with an interaction's token (`ResponseRecord`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import FakeMessage

__all__ = ["RecordedRequest", "ResponseRecord", "RuleViolation", "UploadedFile"]


@dataclass
class UploadedFile:
    """One ``files[n]`` part of a multipart request."""

    field_name: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass(eq=False)
class RecordedRequest:
    """One HTTP request the fake received and what it answered.

    ``path`` is the part after ``/api/v10`` for REST calls (``/channels/1/messages``) and the full path otherwise.
    ``json`` is the JSON body, or the ``payload_json`` part of a multipart body.
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    at: float
    kind: str = "api"
    authorized: bool = False
    status: int | None = None
    code: int | None = None
    response: Any = None

    @property
    def multipart(self) -> bool:
        """Whether the body was multipart (files attached)."""
        return bool(self.files)

    @property
    def time(self) -> float:
        """Alias of ``at``: arrival time on the fake's monotonic clock."""
        return self.at


@dataclass(eq=False)
class RuleViolation:
    """A request the fake rejected for breaking one of Discord's rules."""

    method: str
    path: str
    status: int
    code: int
    message: str
    detail: str
    at: float
    interaction_id: int | None = None


@dataclass(eq=False)
class ResponseRecord:
    """One request made with an interaction's token: ``kind`` is callback, followup, get, edit or delete."""

    kind: str
    method: str
    path: str
    status: int
    at: float
    code: int | None = None
    callback_type: int | None = None
    payload: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    message: FakeMessage | None = None

    @property
    def ok(self) -> bool:
        """Whether the fake accepted it."""
        return 200 <= self.status < 300
