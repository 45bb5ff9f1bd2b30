"""The fake Runware as a process of its own: `python -m fakes.runware --port 0 [--latency S]`.

It prints one line `RUNWARE_API_URL=http://127.0.0.1:PORT/v1` and serves until SIGTERM or SIGINT; another process
drives it through the admin surface (`/_fake/...`, see `fakes.runware.admin`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from fakes.runware.server import DEFAULT_API_KEY, FakeRunware

__all__ = ["main"]


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeRunware(api_key=args.api_key, latency=args.latency, host=args.host, port=args.port)
    fake.cost_override = args.cost_override
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with fake:
        sys.stdout.write(f"RUNWARE_API_URL={fake.url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Serve the fake until SIGTERM/SIGINT, after printing `RUNWARE_API_URL=...` on stdout."""
    parser = argparse.ArgumentParser(prog="python -m fakes.runware", description="Fake Runware REST API.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds from submission to completion")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the accepted API key")
    parser.add_argument("--cost-override", type=float, default=None, help="report this cost (USD) per image")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0
