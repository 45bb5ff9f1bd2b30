"""`python -m bot`: the command line of `bot.cli` (the `atelier` console script runs the same `main`)."""

from bot.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
