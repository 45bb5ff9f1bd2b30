"""A fake Discord (REST, gateway, CDN) on 127.0.0.1 that drives the real discord.py client end to end.

Usage (in-process)::

    async with FakeDiscord(heartbeat_interval_ms=500) as fake:
        world = fake.default_world()
        with pointed_at(fake.api_base, fake.gateway_url):   # or DISCORD_API_BASE / DISCORD_GATEWAY_URL for Atelier
            task = asyncio.create_task(bot.start(fake.token))
            await fake.wait_ready(); await fake.wait_synced()
            interaction = await fake.invoke_slash("imagine", user_id=world.member_id, options={"prompt": "a fox"})
            message = await interaction.wait_message(lambda m: m.attachments)

For a bot in another process, start the fake in the test process (fixture ``fake_discord``), pass
``DISCORD_API_BASE=fake.api_base`` and ``DISCORD_GATEWAY_URL=fake.gateway_url`` (and ``DISCORD_TOKEN=fake.token``)
to the subprocess, ``await fake.wait_ready()`` and drive it from the test with the same calls; after stopping it,
``await fake.wait_disconnected()``. ``python -m fakes.discord`` runs it standalone with a small control API
(``/_fake/…``) for benchmarks.

Attachment URLs point at ``fake.cdn_base`` (the stand-in for cdn.discordapp.com); ``fake.external_image(url, data)``
puts a picture from another site behind the fake's media proxy (the stand-in for images-ext-1.discordapp.net) for
embeds. World changes made after READY reach the bot's cache only through ``await fake.announce_guild(guild_id)``
(or in interaction payloads).

Rules enforced (each a plain attribute: ``ack_deadline``, ``token_ttl``, ``attachment_size_limit``, ``limits``):
3 s initial response (404/10062), one initial response (400/40060), 15 min tokens (401/50027), no follow-up before
the ack (404/10015), per-file size (413/40005), message/embed/component limits (400/50035), empty messages (50006).
Every REST request is validated against Discord's OpenAPI spec into ``openapi_failures``. The gateway closes an
IDENTIFY with 4004 (wrong token), 4013 (undefined intent bit) or 4014 (a privileged intent not switched on in
``privileged_intents``), into ``gateway_closes``; ``reset_token()`` and ``plan_error()`` stage a reset token and an
outage.
"""

from ._core import FakeDiscordCore
from ._flags import (
    ALL_INTENTS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    PRIVILEGED_INTENTS,
    Intent,
    Permission,
)
from ._gateway import GatewaySession
from ._inject import FakeDiscordUsageError
from ._models import (
    FakeChannel,
    FakeClock,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    StoredBlob,
    World,
    sniff_content_type,
)
from ._records import RecordedRequest, ResponseRecord, RuleViolation, UploadedFile
from ._rules import FakeHTTPError, Limits, check_message, check_modal
from ._server import FakeDiscord

__all__ = [
    "ALL_INTENTS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "PRIVILEGED_INTENTS",
    "FakeChannel",
    "FakeClock",
    "FakeDiscord",
    "FakeDiscordCore",
    "FakeDiscordUsageError",
    "FakeGuild",
    "FakeHTTPError",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "GatewaySession",
    "Intent",
    "Limits",
    "Permission",
    "RecordedRequest",
    "ResponseRecord",
    "RuleViolation",
    "StoredBlob",
    "UploadedFile",
    "World",
    "check_message",
    "check_modal",
    "sniff_content_type",
]
