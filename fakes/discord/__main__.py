"""Standalone fake Discord: ``python -m fakes.discord --port 0 [--default-world]``.

Prints ``DISCORD_API_BASE=…``, ``DISCORD_GATEWAY_URL=…``, ``DISCORD_TOKEN=…`` and ``FAKE_DISCORD_CONTROL=…`` (plus
``FAKE_WORLD_…`` ids with ``--default-world``), one per line, then serves until SIGINT or SIGTERM. Another process
drives it through the ``/_fake/…`` control API (see ``_control.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import asdict

from ._server import FakeDiscord


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(
        host=args.host,
        port=args.port,
        token=args.token,
        heartbeat_interval_ms=args.heartbeat_ms,
        ack_deadline=args.ack_deadline,
        validate_openapi=not args.no_openapi,
        control_api=True,
        shard_count=args.shards,
        require_shards=args.require_shards,
    )
    async with fake:
        lines = [
            f"DISCORD_API_BASE={fake.api_base}",
            f"DISCORD_GATEWAY_URL={fake.gateway_url}",
            f"DISCORD_TOKEN={fake.token}",
            f"FAKE_DISCORD_CONTROL={fake.base_url}/_fake",
        ]
        if args.default_world:
            for key, value in asdict(fake.default_world()).items():
                text = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
                lines.append(f"FAKE_WORLD_{key.upper()}={text}")
        print("\n".join(lines), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m fakes.discord", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="fake-bot-token")
    parser.add_argument("--heartbeat-ms", type=int, default=45000)
    parser.add_argument("--ack-deadline", type=float, default=3.0)
    parser.add_argument("--no-openapi", action="store_true", help="skip OpenAPI request validation")
    parser.add_argument("--shards", type=int, default=1, help="the shard count GET /gateway/bot recommends")
    parser.add_argument("--require-shards", action="store_true", help="close an IDENTIFY without a shard (4011)")
    parser.add_argument("--default-world", action="store_true", help="create the default guild before serving")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
