"""`atelier run` (the default): run the Discord bot with the settings from the environment and the config file."""

from __future__ import annotations

import argparse

from bot.app import run as run_bot
from bot.settings import load_settings

NAME = "run"
HELP = "run the Discord bot (the default)"


def configure(parser: argparse.ArgumentParser) -> None:
    """`run` takes no arguments: everything comes from the environment and the config file."""


def run(args: argparse.Namespace) -> int:
    """Run the bot until it stops; `SettingsError` propagates to `main()`'s one-line handler."""
    return run_bot(load_settings())
