"""Discord's limits and error bodies, as the fake enforces them (shared/reference/discord-testing.md §2 and §6).

Every limit lives in :class:`Limits` so a test can loosen or tighten one rule (``fake.limits.max_content = 4000``).
Violations become :class:`FakeHTTPError`, which the server turns into Discord's JSON error body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CODE_ALREADY_ACKNOWLEDGED",
    "CODE_CANNOT_EDIT_OTHERS",
    "CODE_EMPTY_MESSAGE",
    "CODE_ENTITY_TOO_LARGE",
    "CODE_INVALID_FORM_BODY",
    "CODE_INVALID_JSON",
    "CODE_INVALID_WEBHOOK_TOKEN",
    "CODE_MISSING_PERMISSIONS",
    "CODE_UNKNOWN_CHANNEL",
    "CODE_UNKNOWN_COMMAND",
    "CODE_UNKNOWN_GUILD",
    "CODE_UNKNOWN_INTERACTION",
    "CODE_UNKNOWN_MEMBER",
    "CODE_UNKNOWN_MESSAGE",
    "CODE_UNKNOWN_USER",
    "CODE_UNKNOWN_WEBHOOK",
    "FakeHTTPError",
    "Limits",
    "check_commands",
    "check_message",
    "check_modal",
    "form_error",
    "iter_components",
    "walk_components",
]

CODE_UNKNOWN_CHANNEL = 10003
CODE_UNKNOWN_GUILD = 10004
CODE_UNKNOWN_MEMBER = 10007
CODE_UNKNOWN_MESSAGE = 10008
CODE_UNKNOWN_USER = 10013
CODE_UNKNOWN_WEBHOOK = 10015
CODE_UNKNOWN_INTERACTION = 10062
CODE_UNKNOWN_COMMAND = 10063
CODE_CANNOT_EDIT_OTHERS = 50005
CODE_EMPTY_MESSAGE = 50006
CODE_MISSING_PERMISSIONS = 50013
CODE_INVALID_WEBHOOK_TOKEN = 50027
CODE_INVALID_FORM_BODY = 50035
CODE_INVALID_JSON = 50109
CODE_ENTITY_TOO_LARGE = 40005
CODE_ALREADY_ACKNOWLEDGED = 40060

MESSAGE_FLAG_SUPPRESS_EMBEDS = 1 << 2
MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7
MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
MESSAGE_FLAG_IS_COMPONENTS_V2 = 1 << 15

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
_SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
_INTERACTIVE_TYPES = frozenset({2, 3, 4, 5, 6, 7, 8})


@dataclass
class Limits:
    """Discord's documented limits; every field can be changed per test."""

    max_content: int = 2000
    max_embeds: int = 10
    max_files: int = 10
    embed_total: int = 6000
    embed_title: int = 256
    embed_description: int = 4096
    embed_fields: int = 25
    embed_field_name: int = 256
    embed_field_value: int = 1024
    embed_footer: int = 2048
    embed_author: int = 256
    max_action_rows: int = 5
    max_buttons_per_row: int = 5
    max_components_total: int = 40
    custom_id_max: int = 100
    button_label_max: int = 80
    select_options_max: int = 25
    modal_title_max: int = 45
    modal_components_max: int = 5
    modal_label_max: int = 45
    text_input_max: int = 4000


class FakeHTTPError(Exception):
    """A Discord error reply: HTTP ``status``, JSON error ``code``, ``message`` and optional nested ``errors``."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        detail: str = "",
    ) -> None:
        """Build the error; ``detail`` is a short human explanation kept in the fake's records only."""
        super().__init__(f"{status} {code} {message}{': ' + detail if detail else ''}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body Discord sends for this error."""
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def form_error(problems: dict[str, tuple[str, str]], *, prefix: str = "") -> FakeHTTPError:
    """A 400 / 50035 "Invalid Form Body" whose ``errors`` nest each dotted path (``embeds.0.title``)."""
    errors: dict[str, Any] = {}
    for dotted, (code, message) in problems.items():
        node = errors
        path = f"{prefix}.{dotted}" if prefix else dotted
        for part in path.split("."):
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    detail = "; ".join(f"{path}: {message}" for path, (_, message) in problems.items())
    return FakeHTTPError(400, CODE_INVALID_FORM_BODY, "Invalid Form Body", errors=errors, detail=detail)


def walk_components(components: Any, prefix: str = "components") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every component in a message or modal tree with its dotted path, depth first.

    Covers action rows, containers and sections (``components``), section accessories and modal labels
    (``accessory``/``component``).
    """
    if not isinstance(components, list):
        return
    for index, component in enumerate(components):
        if not isinstance(component, dict):
            continue
        path = f"{prefix}.{index}"
        yield path, component
        yield from walk_components(component.get("components"), f"{path}.components")
        for single in ("accessory", "component"):
            child = component.get(single)
            if isinstance(child, dict):
                yield f"{path}.{single}", child
                yield from walk_components(child.get("components"), f"{path}.{single}.components")


def iter_components(components: Any) -> Iterator[dict[str, Any]]:
    """Every component in a message or modal tree, depth first (see :func:`walk_components`)."""
    for _, component in walk_components(components):
        yield component


def _too_long(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def _max_length(limit: int) -> tuple[str, str]:
    return ("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _bad_length(low: int, high: int) -> tuple[str, str]:
    return ("BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _check_embeds(embeds: Any, limits: Limits, problems: dict[str, tuple[str, str]]) -> None:
    if not isinstance(embeds, list):
        return
    if len(embeds) > limits.max_embeds:
        problems["embeds"] = _max_length(limits.max_embeds)
        return
    total = 0
    for index, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            continue
        base = f"embeds.{index}"
        title, description = embed.get("title"), embed.get("description")
        if _too_long(title, limits.embed_title):
            problems[f"{base}.title"] = _max_length(limits.embed_title)
        if _too_long(description, limits.embed_description):
            problems[f"{base}.description"] = _max_length(limits.embed_description)
        total += len(title or "") + len(description or "")
        fields = embed.get("fields") or []
        if len(fields) > limits.embed_fields:
            problems[f"{base}.fields"] = _max_length(limits.embed_fields)
        for f_index, embed_field in enumerate(fields):
            name, value = embed_field.get("name") or "", embed_field.get("value") or ""
            if not name or len(name) > limits.embed_field_name:
                problems[f"{base}.fields.{f_index}.name"] = _bad_length(1, limits.embed_field_name)
            if not value or len(value) > limits.embed_field_value:
                problems[f"{base}.fields.{f_index}.value"] = _bad_length(1, limits.embed_field_value)
            total += len(name) + len(value)
        footer = (embed.get("footer") or {}).get("text")
        if _too_long(footer, limits.embed_footer):
            problems[f"{base}.footer.text"] = _max_length(limits.embed_footer)
        author = (embed.get("author") or {}).get("name")
        if _too_long(author, limits.embed_author):
            problems[f"{base}.author.name"] = _max_length(limits.embed_author)
        total += len(footer or "") + len(author or "")
    if total > limits.embed_total:
        problems["embeds"] = ("MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {limits.embed_total}")


def _check_custom_id(
    component: dict[str, Any], path: str, limits: Limits, problems: dict[str, tuple[str, str]]
) -> None:
    custom_id = component.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= limits.custom_id_max:
        problems[f"{path}.custom_id"] = _bad_length(1, limits.custom_id_max)


def _check_interactive(
    component: dict[str, Any], path: str, limits: Limits, problems: dict[str, tuple[str, str]]
) -> None:
    kind = component.get("type")
    if kind == 2:
        style = component.get("style")
        if style == 5:
            if not component.get("url") or "custom_id" in component:
                problems[f"{path}.url"] = (
                    "BUTTON_COMPONENT_URL_REQUIRED",
                    "A link button needs a url and no custom_id",
                )
        elif style != 6:
            _check_custom_id(component, path, limits, problems)
        if _too_long(component.get("label"), limits.button_label_max):
            problems[f"{path}.label"] = _max_length(limits.button_label_max)
    elif kind in _SELECT_TYPES:
        _check_custom_id(component, path, limits, problems)
        options = component.get("options")
        if kind == 3 and (not isinstance(options, list) or not 1 <= len(options) <= limits.select_options_max):
            problems[f"{path}.options"] = _bad_length(1, limits.select_options_max)


def _check_message_components(
    components: Any, flags: int, limits: Limits, problems: dict[str, tuple[str, str]]
) -> None:
    if not isinstance(components, list):
        return
    every = list(iter_components(components))
    if flags & MESSAGE_FLAG_IS_COMPONENTS_V2:
        if len(every) > limits.max_components_total:
            problems["components"] = _max_length(limits.max_components_total)
    else:
        if len(components) > limits.max_action_rows:
            problems["components"] = _max_length(limits.max_action_rows)
        for row_index, row in enumerate(components):
            path = f"components.{row_index}"
            if not isinstance(row, dict) or row.get("type") != 1:
                problems[f"{path}.type"] = ("UNION_TYPE_CHOICES", "Value must be an action row (type 1)")
                continue
            children = row.get("components") or []
            kinds = [child.get("type") for child in children if isinstance(child, dict)]
            if not children:
                problems[f"{path}.components"] = _bad_length(1, limits.max_buttons_per_row)
            elif (any(kind in _SELECT_TYPES for kind in kinds) and len(children) > 1) or len(
                children
            ) > limits.max_buttons_per_row:
                problems[f"{path}.components"] = (
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
    seen: set[str] = set()
    for path, component in walk_components(components):
        if component.get("type") in _INTERACTIVE_TYPES:
            _check_interactive(component, path, limits, problems)
        custom_id = component.get("custom_id")
        if isinstance(custom_id, str):
            if custom_id in seen:
                problems[f"{path}.custom_id"] = (
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(custom_id)


def check_message(
    payload: dict[str, Any],
    *,
    file_count: int,
    limits: Limits,
    allowed_flags: int,
    require_body: bool,
    existing_attachments: int = 0,
) -> None:
    """Raise :class:`FakeHTTPError` (400/50035 or 50006) when a message body breaks Discord's rules.

    ``require_body`` is set for creates: a message needs content, embeds, attachments, components or stickers.
    """
    problems: dict[str, tuple[str, str]] = {}
    content = payload.get("content")
    if _too_long(content, limits.max_content):
        problems["content"] = _max_length(limits.max_content)
    _check_embeds(payload.get("embeds"), limits, problems)
    flags = payload.get("flags") or 0
    if not isinstance(flags, int) or flags & ~allowed_flags:
        problems["flags"] = ("MESSAGE_FLAGS_INVALID", "Invalid flags for this message")
        flags = 0
    if flags & MESSAGE_FLAG_IS_COMPONENTS_V2 and (content or payload.get("embeds")):
        problems["content"] = (
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used when using MessageFlags.IS_COMPONENTS_V2",
        )
    _check_message_components(payload.get("components"), flags, limits, problems)
    attachments = payload.get("attachments")
    attachment_total = len(attachments) if isinstance(attachments, list) else file_count + existing_attachments
    if file_count > limits.max_files or attachment_total > limits.max_files:
        problems["attachments"] = _max_length(limits.max_files)
    if problems:
        raise form_error(problems)
    if require_body and not (
        content
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("sticker_ids")
        or payload.get("poll")
        or file_count
        or attachments
    ):
        raise FakeHTTPError(400, CODE_EMPTY_MESSAGE, "Cannot send an empty message")


def check_modal(data: Any, limits: Limits) -> None:
    """Raise :class:`FakeHTTPError` when the ``data`` of a type-9 (MODAL) callback breaks Discord's rules."""
    if not isinstance(data, dict):
        raise form_error({"data": ("BASE_TYPE_REQUIRED", "This field is required")})
    problems: dict[str, tuple[str, str]] = {}
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= limits.custom_id_max:
        problems["data.custom_id"] = _bad_length(1, limits.custom_id_max)
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= limits.modal_title_max:
        problems["data.title"] = _bad_length(1, limits.modal_title_max)
    components = data.get("components")
    if not isinstance(components, list) or not 1 <= len(components) <= limits.modal_components_max:
        problems["data.components"] = _bad_length(1, limits.modal_components_max)
        components = []
    seen: set[str] = set()
    for path, component in walk_components(components, "data.components"):
        kind = component.get("type")
        if component.get("disabled"):
            problems[f"{path}.disabled"] = ("COMPONENT_DISABLED", "Components in modals cannot be disabled")
        if kind == 18:
            label = component.get("label")
            if not isinstance(label, str) or not 1 <= len(label) <= limits.modal_label_max:
                problems[f"{path}.label"] = _bad_length(1, limits.modal_label_max)
        if kind == 4:
            _check_custom_id(component, path, limits, problems)
            if _too_long(component.get("label"), limits.modal_label_max):
                problems[f"{path}.label"] = _max_length(limits.modal_label_max)
            if _too_long(component.get("value"), limits.text_input_max):
                problems[f"{path}.value"] = _max_length(limits.text_input_max)
            for bound in ("min_length", "max_length"):
                value = component.get(bound)
                if value is not None and not 0 <= value <= limits.text_input_max:
                    problems[f"{path}.{bound}"] = ("NUMBER_TYPE_MAX", f"int value should be <= {limits.text_input_max}")
        elif kind in _SELECT_TYPES or kind == 19:
            _check_custom_id(component, path, limits, problems)
        custom_id_value = component.get("custom_id")
        if isinstance(custom_id_value, str):
            if custom_id_value in seen:
                problems[f"{path}.custom_id"] = (
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(custom_id_value)
    if problems:
        raise form_error(problems)


def check_commands(commands: list[Any]) -> None:
    """Check a bulk overwrite of application commands as Discord does (names, descriptions, options, counts)."""
    problems: dict[str, tuple[str, str]] = {}
    for index, command in enumerate(commands):
        _check_command(index, command, problems)
    if sum(1 for c in commands if isinstance(c, dict) and c.get("type", 1) == 1) > 100:
        problems["_"] = ("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer chat input commands.")
    if problems:
        raise form_error(problems)


def _check_command(index: int, command: Any, problems: dict[str, tuple[str, str]]) -> None:
    base = str(index)
    if not isinstance(command, dict):
        problems[base] = ("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    kind = command.get("type", 1)
    name = command.get("name")
    if kind == 1:
        valid = isinstance(name, str) and bool(_COMMAND_NAME.match(name)) and name == name.lower()
    else:  # context-menu names may hold spaces and capitals
        valid = isinstance(name, str) and 1 <= len(name) <= 32
    if not valid:
        problems[f"{base}.name"] = ("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    description = command.get("description") or ""
    if kind == 1 and not 1 <= len(description) <= 100:
        problems[f"{base}.description"] = ("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    _check_options(f"{base}.options", command.get("options") or [], problems)


def _check_options(base: str, options: list[dict[str, Any]], problems: dict[str, tuple[str, str]]) -> None:
    if len(options) > 25:
        problems[base] = ("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for index, option in enumerate(options):
        path = f"{base}.{index}"
        name = option.get("name")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            problems[f"{path}.name"] = ("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if name in names:
            problems[f"{path}.name"] = (
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(name)
        if not 1 <= len(option.get("description") or "") <= 100:
            problems[f"{path}.description"] = ("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if option.get("type") in (1, 2):
            _check_options(f"{path}.options", option.get("options") or [], problems)
            continue
        if option.get("required"):
            if seen_optional:
                problems[f"{path}.required"] = (
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if len(option.get("choices") or []) > 25:
            problems[f"{path}.choices"] = ("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
