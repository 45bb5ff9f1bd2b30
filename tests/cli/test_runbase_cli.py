"""`python -m bot check` and `generate --provider runbase` against the fake Runbase, as a real process.

The fake runs in the test's event loop; the command runs as a child process (so the loop keeps serving it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from fakes.runbase import FakeRunbase

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(*args: str, cwd: Path | None = None, **env: str) -> Result:
    """Run `python -m bot ARGS` with only the given provider settings (no Runware key unless given)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RUNWARE_", "RUNBASE_", "ATELIER_", "DISCORD_", "LOG_LEVEL"))
    }
    environment |= {"PYTHONPATH": str(REPO_ROOT), "ATELIER_CONFIG": str(REPO_ROOT / "config" / "atelier.toml")}
    environment |= env
    with tempfile.TemporaryDirectory() as empty:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            cwd=cwd or empty,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def lines(result: Result, name: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"{name}:")]


async def test_check_with_a_good_runbase_key_and_no_runware_key(fake_runbase: FakeRunbase, tmp_path: Path) -> None:
    """Runbase alone is a working set-up: the key is verified by a run that cannot exist, nothing is spent."""
    result = await run_cli(
        "check",
        RUNBASE_API_KEY=fake_runbase.api_key,
        RUNBASE_API_URL=fake_runbase.url,
        ATELIER_DATABASE=str(tmp_path / "c.sqlite3"),
    )
    [runbase] = lines(result, "runbase")
    assert runbase.startswith("runbase: ok: key accepted"), result.stdout
    [runware] = lines(result, "runware")
    assert runware.startswith("runware: ok: RUNWARE_API_KEY is not set"), result.stdout
    assert fake_runbase.creates == [] and fake_runbase.total_charged_micros == 0
    [poll] = fake_runbase.polls
    assert poll.status == 404 and poll.code == "run_not_found"


async def test_check_with_a_bad_runbase_key_names_the_setting_not_the_key(
    fake_runbase: FakeRunbase, tmp_path: Path
) -> None:
    result = await run_cli(
        "check",
        RUNBASE_API_KEY="sk-wrong-key-789",
        RUNBASE_API_URL=fake_runbase.url,
        ATELIER_DATABASE=str(tmp_path / "c.sqlite3"),
    )
    assert result.returncode == 1
    [runbase] = lines(result, "runbase")
    assert runbase == "runbase: FAILED: Runbase rejected the API key (invalid_api_key): check RUNBASE_API_KEY."
    assert "sk-wrong-key-789" not in result.stdout + result.stderr
    assert "runbase" in result.stdout.splitlines()[-1]


async def test_check_with_a_key_limited_to_other_ips_names_the_limit(fake_runbase: FakeRunbase, tmp_path: Path) -> None:
    fake_runbase.add_key("sk-office-only", allowed_ips={"203.0.113.9"})
    result = await run_cli(
        "check",
        RUNBASE_API_KEY="sk-office-only",
        RUNBASE_API_URL=fake_runbase.url,
        ATELIER_DATABASE=str(tmp_path / "c.sqlite3"),
    )
    [runbase] = lines(result, "runbase")
    assert "allow-list" in runbase and runbase.startswith("runbase: FAILED"), runbase


async def test_generate_on_runbase_saves_the_images_and_prints_the_exact_cost(
    fake_runbase: FakeRunbase, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = await run_cli(
        "generate",
        "a lighthouse at dusk",
        "--provider",
        "runbase",
        "--model",
        "gpt-image-1.5",
        "--quality",
        "high",
        "--size",
        "1536x1024",
        "--count",
        "2",
        "--out",
        str(out),
        RUNBASE_API_KEY=fake_runbase.api_key,
        RUNBASE_API_URL=fake_runbase.url,
        ATELIER_DATABASE=str(tmp_path / "g.sqlite3"),
    )
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.splitlines() if line.startswith(str(out))]
    assert len(paths) == 2
    for path in paths:
        with Image.open(path) as image:
            assert image.size == (1536, 1024)
    assert result.stdout.splitlines()[-1] == "cost: $0.32"
    assert len(fake_runbase.creates) == 2 and fake_runbase.total_charged_micros == 320_000


async def test_generate_on_runbase_with_an_empty_balance_says_so_and_spends_nothing(
    fake_runbase: FakeRunbase, tmp_path: Path
) -> None:
    fake_runbase.balance_micros = 0
    result = await run_cli(
        "generate",
        "a fox",
        "--provider",
        "runbase",
        "--model",
        "gpt-image-1",
        "--out",
        str(tmp_path / "out"),
        RUNBASE_API_KEY=fake_runbase.api_key,
        RUNBASE_API_URL=fake_runbase.url,
        ATELIER_DATABASE=str(tmp_path / "g.sqlite3"),
    )
    assert result.returncode == 1
    assert "Your Runbase balance is too low (insufficient_balance)" in result.stderr
    assert "Nothing was spent" in result.stderr
    assert fake_runbase.total_charged_micros == 0


async def test_generate_on_runbase_refuses_what_runbase_cannot_do_before_sending(
    fake_runbase: FakeRunbase, tmp_path: Path
) -> None:
    env = {
        "RUNBASE_API_KEY": fake_runbase.api_key,
        "RUNBASE_API_URL": fake_runbase.url,
        "ATELIER_DATABASE": str(tmp_path / "g.sqlite3"),
    }
    mini = await run_cli("generate", "a fox", "--provider", "runbase", "--model", "gpt-image-1-mini", **env)
    assert mini.returncode == 2
    assert mini.stderr.strip() == "atelier: GPT Image 1 Mini is not served by Runbase; use --provider runware"
    clear = await run_cli(
        "generate", "a fox", "--provider", "runbase", "--model", "gpt-image-1", "--background", "transparent", **env
    )
    assert clear.returncode == 2
    assert "background transparent: Runbase offers auto or opaque" in clear.stderr
    assert fake_runbase.requests == []
