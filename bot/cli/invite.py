"""`atelier invite`: print the OAuth2 URL that invites the bot with the scopes and permissions it needs."""

from __future__ import annotations

import argparse

from bot.discord.invite import application_id_from_token, invite_url
from bot.exit_codes import EXIT_OK
from bot.settings import SettingsError, load_settings, parse_snowflake

NAME = "invite"
HELP = "print the OAuth2 URL that invites the bot with the scopes and permissions it needs"


def _application_id(text: str) -> int:
    """Parse `--client-id`: a Discord application id (a positive whole number), else argparse's one-line error."""
    application_id = parse_snowflake(text)
    if application_id is None:
        raise argparse.ArgumentTypeError(
            f"must be the bot's application id (a positive whole number, from the developer portal), not {text!r}"
        )
    return application_id


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `--client-id`."""
    parser.add_argument(
        "--client-id",
        type=_application_id,
        metavar="APPLICATION_ID",
        help="the application id (default: read from DISCORD_TOKEN)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the invite URL; the application id comes from --client-id or from the bot token."""
    application_id = args.client_id
    if application_id is None:
        settings = load_settings()
        if settings.discord_token is None:
            problem = settings.missing("DISCORD_TOKEN", " to read the application id from it")
            raise SettingsError("DISCORD_TOKEN", f"{problem}, or pass --client-id APPLICATION_ID")
        application_id = application_id_from_token(settings.discord_token.get_secret_value())
        if application_id is None:
            raise SettingsError("DISCORD_TOKEN", "is not a bot token (cannot read the application id); use --client-id")
    print(invite_url(application_id))
    return EXIT_OK
