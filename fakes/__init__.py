"""Fake Discord and Runware servers on 127.0.0.1, shared by the tests and the benchmarks (README.md here says what
each guarantees and what it does not model).

- `fakes.discord`: REST, gateway, CDN and media proxy for an unmodified discord.py client (`FakeDiscord`);
  `fakes.discord.seam.pointed_at` points discord.py at it; `python -m fakes.discord` runs it standalone.
- `fakes.openapi_check`: validates the REST traffic against Discord's OpenAPI description.
- `fakes.runware`: the Runware REST API (`FakeRunware`, `Fault`); `python -m fakes.runware` runs it standalone.
- `fakes.config_file`: the project's config file (price table) for both.
- `fakes.discord_plugin`, `fakes.runware_plugin`: the pytest fixtures (`fake_discord`, `fake_runware`, `runware_key`).
"""
