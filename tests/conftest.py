"""Shared fixtures: the fake Runware and fake Discord servers are plugins so every test directory can use them."""

pytest_plugins = ["tests.fakes.runware_plugin", "tests.fakes.discord_plugin"]
