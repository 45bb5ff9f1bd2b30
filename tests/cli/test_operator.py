"""The operator's CLI: `generate` never pays for nothing and records its spending; `init`; `check`; run anywhere."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.reports import OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, Reports
from bot.cli.operator import refused_for_certain
from bot.cli.output import OutputError, claim_files
from bot.runware.errors import (
    RunwareAuthError,
    RunwareCreditsError,
    RunwareDuplicateTaskError,
    RunwareInvalidRequestError,
    RunwareServerError,
    RunwareTimeoutError,
    error_from_wire,
)
from bot.settings import BUILTIN_CONFIG_LABEL, ENVIRONMENT_VARIABLES, builtin_config_text, load_settings
from bot.storage.database import Database
from bot.storage.migrate import latest_version
from fakes.discord import FakeDiscord
from fakes.runbase import FakeRunbase
from fakes.runware import DEFAULT_API_KEY
from tests.test_cli import REPO_ROOT, admin, run_cli, write_png

pytestmark = pytest.mark.slow

MEMBER_WORDS = ("your budget", "budget", "the bot owner", "member")
"""Words for a Discord member that must never reach the operator's terminal."""


def assert_operator_words(result: subprocess.CompletedProcess[str]) -> None:
    text = (result.stdout + result.stderr).lower()
    for words in MEMBER_WORDS:
        assert words not in text, text


def ledger_rows(database: Path) -> list[tuple[int, int, str, int]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT guild_id, member_id, kind, amount FROM ledger ORDER BY id").fetchall()


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permission bits, so it gets read-only sysfs)."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    folder = Path("/sys/kernel")
    try:
        (folder / "atelier-probe").open("xb").close()
    except OSError:
        return folder
    pytest.skip("no read-only folder available to root here")


@pytest.mark.parametrize("target", ["file", "inside-a-file", "unwritable"])
def test_generate_refuses_an_unusable_out_before_sending_anything(fake_url: str, tmp_path: Path, target: str) -> None:
    """--out naming a file, a folder under a file, or an unwritable folder: one line, exit 2, Runware saw nothing."""
    a_file = tmp_path / "image.png"
    a_file.write_bytes(b"not a folder")
    out = {"file": a_file, "inside-a-file": a_file / "sub", "unwritable": unwritable_folder(tmp_path)}[target]
    database = tmp_path / "db.sqlite3"
    result = run_cli(fake_url, "generate", "a fox", "--out", str(out), ATELIER_DATABASE=str(database))
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert str(a_file if target == "inside-a-file" else out) in line and "nothing was sent" in line, line
    assert admin(fake_url, "/_fake/stats")["requests"] == 0
    assert not database.exists()
    assert a_file.read_bytes() == b"not a folder"
    assert_operator_words(result)


def test_generate_records_its_spending_as_the_operators_and_no_members(fake_url: str, tmp_path: Path) -> None:
    """A paid generation: a hold and a settle under the operator's reserved id, in its report, in no member's total."""
    database = tmp_path / "data" / "atelier.sqlite3"
    result = run_cli(fake_url, "generate", "a red fox", "--out", str(tmp_path / "out"), ATELIER_DATABASE=str(database))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "cost: $0.011"
    assert result.stderr == ""
    assert_operator_words(result)
    assert ledger_rows(database) == [
        (OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, "hold", 11_000),
        (OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, "settle", 11_000),
    ]

    async def read() -> None:
        settings = load_settings({"ATELIER_CONFIG": str(REPO_ROOT / "config" / "atelier.toml")})
        async with await Database.open(database) as db:
            budgets = Budgets(db, settings.app)
            report = await Reports(db, budgets).spend_for_period(OPERATOR_GUILD_ID)
            assert report.total_spent == 11_000 and report.total_jobs == 1
            assert [(m.model, m.spent) for m in report.by_model] == [("gpt-image-1-mini", 11_000)]
            status = await Ledger(db, budgets).status(OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, [])
            assert (status.spent, status.reserved, status.allowance, status.server_cap) == (11_000, 0, None, None)
            # A member of a real server sees none of it.
            member = await Ledger(db, budgets).status(123456789, 987654321, [])
            assert (member.spent, member.reserved, member.server_spent) == (0, 0, 0)

    asyncio.run(read())
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT DISTINCT guild_id FROM guild_day_totals").fetchall() == [(OPERATOR_GUILD_ID,)]

    # `atelier report --guild 0` names the operator's spending as such, never as a member id.
    out = tmp_path / "report"
    report = run_cli(fake_url, "report", "--guild", "0", "--out", str(out), ATELIER_DATABASE=str(database))
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0].startswith("operator (terminal), current ")
    by_member = lines[lines.index("by member:") + 1 : lines.index("by model:")]
    assert by_member == ["  operator (terminal): 0.011000 USD (1 job(s))"]
    assert "  terminal (no channel): 0.011000 USD (1 job(s))" in lines


def test_a_failed_generation_releases_the_hold_and_leaves_no_folder(
    fake_url: str, fast_config: str, tmp_path: Path
) -> None:
    """A content refusal: the hold is released (no settle), the folder made for it is gone; operator's words."""
    admin(fake_url, "/_fake/fail", {"fault": "content_policy"})
    database = tmp_path / "db.sqlite3"
    out = tmp_path / "new" / "out"
    result = run_cli(
        fake_url, "generate", "a fox", "--out", str(out), ATELIER_CONFIG=fast_config, ATELIER_DATABASE=str(database)
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "content policy" in line and "Nothing was spent (the hold was released)" in line
    assert_operator_words(result)
    assert [kind for _, _, kind, _ in ledger_rows(database)] == ["hold", "release"]
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("fault", ["task_timeout", "hang"])
def test_an_unknown_outcome_is_settled_at_the_estimate_and_said_so(
    fake_url: str, fast_config: str, tmp_path: Path, fault: str
) -> None:
    """The task times out at the provider after Runware accepted it, or the submission gets no answer at all (sent,
    outcome unknown): the owner may have paid, so the estimate is recorded as the operator's spend, and said so."""
    admin(fake_url, "/_fake/fail", {"fault": fault, "task_type": "imageInference"})
    database = tmp_path / "db.sqlite3"
    config = tmp_path / "atelier.toml"
    text = Path(fast_config).read_text(encoding="utf-8").replace("max_retries = 4", "max_retries = 0")
    config.write_text(text.replace("request_timeout_seconds = 60", "request_timeout_seconds = 0.4"), encoding="utf-8")
    result = run_cli(
        fake_url,
        "generate",
        "a fox",
        "--out",
        str(tmp_path / "out"),
        ATELIER_CONFIG=str(config),
        ATELIER_DATABASE=str(database),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the client's warnings, when it asked about the task
    assert "Runware may have charged your account $0.011; recorded as operator spend" in line, line
    assert "Nothing was spent" not in line
    assert_operator_words(result)
    assert ledger_rows(database) == [
        (OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, "hold", 11_000),
        (OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, "settle", 11_000),
    ]
    with sqlite3.connect(database) as conn:
        state, extras = conn.execute("SELECT state, extras FROM jobs").fetchone()
    assert state == "failed" and json.loads(extras)["outcome"] == "unknown"


@pytest.mark.parametrize("refusal", ["unauthorized", "insufficient_credits", "connection_refused"])
def test_a_certain_refusal_releases_the_hold(fake_url: str, fast_config: str, tmp_path: Path, refusal: str) -> None:
    """A refused key, an empty account, a connection never opened: Runware ran nothing, so nothing is recorded."""
    url = fake_url
    if refusal == "connection_refused":
        with socket.socket() as probe:  # a port that was just free: nothing listens there
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    else:
        admin(fake_url, "/_fake/fail", {"fault": refusal, "times": 20})
    database = tmp_path / "db.sqlite3"
    config = tmp_path / "atelier.toml"
    config.write_text(
        Path(fast_config).read_text(encoding="utf-8").replace("max_retries = 4", "max_retries = 0"), encoding="utf-8"
    )
    result = run_cli(
        url,
        "generate",
        "a fox",
        "--out",
        str(tmp_path / "out"),
        ATELIER_CONFIG=str(config),
        ATELIER_DATABASE=str(database),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the client's warning about retrying, when it retries
    assert "Nothing was spent (the hold was released)" in line and "may have charged" not in line, line
    assert [kind for _, _, kind, _ in ledger_rows(database)] == ["hold", "release"]


def test_a_reference_before_the_prompt_does_not_swallow_it(fake_url: str, fast_config: str, tmp_path: Path) -> None:
    """`--reference a.png "prompt"` is one reference and the prompt; `--reference` repeats for more."""
    first, second = write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png")
    result = run_cli(
        fake_url,
        "generate",
        "--reference",
        str(first),
        "--reference",
        str(second),
        "a fox in the snow",
        "--model",
        "gpt-image-1.5",
        "--out",
        str(tmp_path / "out"),
        ATELIER_CONFIG=fast_config,
        ATELIER_DATABASE=str(tmp_path / "db.sqlite3"),
    )
    assert result.returncode == 0, result.stderr
    [task] = admin(fake_url, "/_fake/requests?task_type=imageInference")
    assert task["positivePrompt"] == "a fox in the snow"
    assert len(task["inputs"]["referenceImages"]) == 2


def test_claimed_names_never_overwrite_a_file(tmp_path: Path) -> None:
    """Taken names move the whole set to the next free suffix; the claimed files exist (empty) until discarded."""
    (tmp_path / "abcd-2.png").write_bytes(b"mine")
    claim = claim_files(tmp_path, "abcd", "png", 2)
    assert [path.name for path in claim.paths] == ["abcd-2-1.png", "abcd-2-2.png"]
    assert (tmp_path / "abcd-2.png").read_bytes() == b"mine"
    claim.discard()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["abcd-2.png"]
    with pytest.raises(OutputError, match="is a file, not a folder"):
        claim_files(tmp_path / "abcd-2.png", "x", "png", 1)


def test_a_save_that_fails_after_paying_keeps_the_images_and_says_what_was_paid(
    fake_url: str, fast_config: str, tmp_path: Path
) -> None:
    """The output folder is replaced by a file while Runware works: the paid images land in a temporary folder."""
    out = tmp_path / "out"
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("RUNWARE_", "ATELIER_", "DISCORD_"))
    } | {
        "PYTHONPATH": str(REPO_ROOT),
        "RUNWARE_API_URL": fake_url,
        "RUNWARE_API_KEY": DEFAULT_API_KEY,
        "ATELIER_CONFIG": fast_config,
        "ATELIER_DATABASE": str(tmp_path / "db.sqlite3"),
    }
    admin(fake_url, "/_fake/config", {"latency": 1.5})
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "generate", "a fox", "--out", str(out)],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert admin(fake_url, "/_fake/stats")["requests"] <= 1  # claimed before the generation finished
        for claimed in out.iterdir():
            claimed.unlink()
        out.rmdir()
        out.write_bytes(b"in the way")
        stdout, stderr = process.communicate(timeout=30)
    finally:
        admin(fake_url, "/_fake/config", {"latency": 0})
    assert process.returncode == 1, stderr
    [line] = stderr.strip().splitlines()
    assert "they were paid for" in line and "cost: $0.011" in line, line
    [saved] = stdout.strip().splitlines()
    assert "atelier-unsaved-" in saved and Path(saved).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.read_bytes() == b"in the way"
    assert [kind for _, _, kind, _ in ledger_rows(tmp_path / "db.sqlite3")] == ["hold", "settle"]


def test_init_writes_both_files_and_never_overwrites(fake_url: str, tmp_path: Path) -> None:
    """`init DIR` writes atelier.toml (the built-in defaults) and a .env with names only; a second run refuses."""
    folder = tmp_path / "bot-home"
    result = run_cli(fake_url, "init", str(folder))
    assert result.returncode == 0, result.stderr
    assert (folder / "atelier.toml").read_text(encoding="utf-8") == builtin_config_text()
    env = (folder / ".env").read_text(encoding="utf-8")
    assert "DISCORD_TOKEN=\n" in env and "RUNWARE_API_KEY=\n" in env
    home = folder.resolve()
    steps = result.stdout[result.stdout.index("next:") :]
    assert (
        steps.index(f"edit {home / '.env'}") < steps.index(f"cd {home} && atelier check") < steps.index("atelier run")
    )
    assert oct((folder / ".env").stat().st_mode & 0o777) == oct(0o600)
    (folder / ".env").write_text("DISCORD_TOKEN=mine\n", encoding="utf-8")
    again = run_cli(fake_url, "init", str(folder))
    assert again.returncode == 2
    [line] = again.stderr.strip().splitlines()
    assert "already exist" in line and "nothing was written" in line
    assert (folder / ".env").read_text(encoding="utf-8") == "DISCORD_TOKEN=mine\n"


CONTRACT_VARIABLES = (
    # contract §5.1
    "DISCORD_TOKEN",
    "RUNWARE_API_KEY",
    "RUNWARE_API_URL",
    "DISCORD_API_BASE",
    "DISCORD_GATEWAY_URL",
    "ATELIER_DATABASE",
    "ATELIER_CONFIG",
    "ATELIER_DEV_GUILD",
    "LOG_LEVEL",
    # contract §5.4
    "RUNBASE_API_KEY",
    "RUNBASE_API_URL",
    "ATELIER_SHARDS",
    "ATELIER_METRICS_PORT",
)
SECRETS = ("DISCORD_TOKEN", "RUNWARE_API_KEY", "RUNBASE_API_KEY")


def test_the_env_template_lists_every_variable_with_a_comment_and_no_secret(tmp_path: Path) -> None:
    """Every variable of the contract and every one the settings read: once, after a comment; secrets empty."""
    lines = (REPO_ROOT / "bot" / "defaults" / "env.template").read_text(encoding="utf-8").splitlines()
    assignments = {
        line.removeprefix("# ").split("=", 1)[0]: (index, line)
        for index, line in enumerate(lines)
        if re.fullmatch(r"(# )?[A-Z_]+=.*", line)
    }
    assert set(CONTRACT_VARIABLES) | set(ENVIRONMENT_VARIABLES) <= set(assignments), assignments.keys()
    for name, (index, line) in assignments.items():
        above = lines[index - 1]
        assert above.startswith("# ") and "=" not in above.split()[1], f"{name} has no comment above it"
        if name in SECRETS:
            assert line == f"{name}=", line
    # As written, it loads (the uncommented values are valid) with every default in place.
    (tmp_path / "atelier.toml").write_text(builtin_config_text(), encoding="utf-8")
    env = tmp_path / ".env"
    env.write_text("\n".join(lines), encoding="utf-8")
    settings = load_settings({"ATELIER_CONFIG": str(tmp_path / "atelier.toml")}, env_file=env)
    assert settings.runware_api_key is None and settings.metrics_port is None


def test_the_packaged_defaults_are_the_checkouts_config() -> None:
    """One configuration: the file inside the package is config/atelier.toml, byte for byte."""
    assert builtin_config_text() == (REPO_ROOT / "config" / "atelier.toml").read_text(encoding="utf-8")


def test_without_a_config_file_the_built_in_defaults_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ATELIER_CONFIG and no config/atelier.toml in the working folder: the defaults inside the package."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.config_path is None and settings.config_source == BUILTIN_CONFIG_LABEL
    assert settings.database == Path("data/atelier.sqlite3") and settings.app.paths.output == Path("out")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "atelier.toml").write_text(
        builtin_config_text().replace('database = "data/atelier.sqlite3"', 'database = "db/mine.sqlite3"'),
        encoding="utf-8",
    )
    assert load_settings({}).database == Path("db/mine.sqlite3")
    assert load_settings({"ATELIER_DATABASE": "x.sqlite3"}).database == Path("x.sqlite3")


def test_check_reports_a_database_behind_the_code_without_migrating_it(fake_url: str, tmp_path: Path) -> None:
    """A database one migration behind: `needs migration from vN to vM`, and it is still at vN afterwards."""
    database = tmp_path / "old.sqlite3"
    behind = latest_version() - 1

    async def create() -> None:
        async with await Database.open(database, migrate_to=behind):
            pass

    asyncio.run(create())
    result = run_cli(fake_url, "check", ATELIER_DATABASE=str(database))
    assert f"needs migration from v{behind} to v{latest_version()}" in result.stdout, result.stdout
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == behind
    assert list(tmp_path.glob("*.bak")) == []


@pytest.fixture
def flaky_discord() -> Iterator[tuple[str, list[str]]]:
    """A Discord REST stand-in: the first request gets a 503, then /users/@me and /applications/@me answer."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if len(seen) == 1:
                status, body = 503, {"message": "upstream"}
            elif self.path.endswith("/users/@me"):
                status, body = 200, {"id": "4242", "username": "Atelier", "discriminator": "0", "bot": True}
            else:
                status, body = 200, {"id": "4242", "name": "Atelier", "flags": 1 << 19}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v10", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_check_shows_progress_while_it_retries_and_names_the_bot(
    fake_url: str, tmp_path: Path, flaky_discord: tuple[str, list[str]]
) -> None:
    """A 503 from Discord: a `retrying in 1 s (attempt 2/4)` line, then the bot, its application id, reply editing."""
    api_base, seen = flaky_discord
    result = run_cli(
        fake_url,
        "check",
        DISCORD_API_BASE=api_base,
        DISCORD_TOKEN="NDI0Mg.abc.def",
        ATELIER_DATABASE=str(tmp_path / "db.sqlite3"),
    )
    lines = result.stdout.splitlines()
    assert "discord: Discord answered HTTP 503; retrying in 1 s (attempt 2/4)" in lines, result.stdout
    assert "discord: ok: token of the bot Atelier (user id 4242, application id 4242)" in lines
    assert any(line.startswith("intents: ok: Reply editing is on") for line in lines), result.stdout
    assert seen == ["/api/v10/users/@me", "/api/v10/users/@me", "/api/v10/applications/@me"]
    assert lines[-1] == "verdict: ready: `atelier run` should start" and result.returncode == 0


async def _installed(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the installed `atelier` script (not `python -m` from the checkout) in `cwd`."""
    script = Path(sys.executable).parent / "atelier"
    process = await asyncio.create_subprocess_exec(
        str(script), *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_installed_command_works_from_an_empty_folder_outside_the_checkout(
    fake_discord: FakeDiscord, fake_url: str, tmp_path: Path
) -> None:
    """`atelier init`, `atelier check` and `atelier generate` in an empty folder, with only what init wrote."""
    home = tmp_path / "home"
    home.mkdir()
    assert REPO_ROOT not in home.parents
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("RUNWARE_", "ATELIER_", "DISCORD_"))
    }
    env.pop("PYTHONPATH", None)
    code, out, err = await _installed(home, env, "init")
    assert code == 0, err
    env |= {
        "DISCORD_TOKEN": fake_discord.token,
        "DISCORD_API_BASE": fake_discord.api_base,
        "RUNWARE_API_URL": fake_url,
        "RUNWARE_API_KEY": DEFAULT_API_KEY,
    }
    code, out, err = await _installed(home, env, "check")
    assert code == 0, out + err
    assert "config: ok: atelier.toml" in out
    assert f"application id {fake_discord.application_id}" in out
    assert out.splitlines()[-1] == "verdict: ready: `atelier run` should start"
    code, out, err = await _installed(home, env, "generate", "a fox")
    assert code == 0, err
    [saved, cost] = out.strip().splitlines()
    assert Path(saved).parent == Path("out") and (home / saved).is_file() and cost == "cost: $0.011"
    assert (home / "data" / "atelier.sqlite3").is_file()
    assert sorted(path.name for path in home.iterdir()) == [".env", "atelier.toml", "data", "out"]


def test_refused_for_certain_believes_only_an_answered_refusal_or_a_connection_never_made() -> None:
    """The one judgement `generate` releases on: anything that may have run is an unknown outcome, never released."""
    assert refused_for_certain(RunwareAuthError(status=401), accepted=False)
    assert refused_for_certain(RunwareCreditsError(status=402), accepted=False)
    assert refused_for_certain(RunwareInvalidRequestError(status=400), accepted=False)
    assert not refused_for_certain(RunwareAuthError(status=401), accepted=True)  # the task was accepted before
    assert not refused_for_certain(RunwareTimeoutError(code="requestTimeout", retryable=True), accepted=False)
    assert not refused_for_certain(RunwareServerError(status=500), accepted=False)
    assert not refused_for_certain(RunwareDuplicateTaskError(status=400), accepted=False)
    assert not refused_for_certain(KeyboardInterrupt(), accepted=False)
    assert refused_for_certain(error_from_wire({"code": "contentPolicyViolation"}), accepted=True)
    assert not refused_for_certain(error_from_wire({"code": "timeoutProvider"}), accepted=True)


async def test_check_verifies_the_runbase_key_when_it_is_set(
    fake_url: str, tmp_path: Path, flaky_discord: tuple[str, list[str]], fake_runbase: FakeRunbase
) -> None:
    """RUNBASE_API_KEY set: a `runbase` line, ok for the key the fake accepts, FAILED naming the variable for another;
    nothing spent either way (the fake made no run)."""
    api_base, _seen = flaky_discord
    common = {
        "DISCORD_API_BASE": api_base,
        "DISCORD_TOKEN": "NDI0Mg.abc.def",
        "ATELIER_DATABASE": str(tmp_path / "db.sqlite3"),
        "RUNBASE_API_URL": fake_runbase.url,
    }
    good = await asyncio.to_thread(run_cli, fake_url, "check", RUNBASE_API_KEY=fake_runbase.api_key, **common)
    expected = (
        f"runbase: ok: key accepted (run_not_found for a run that cannot exist), nothing spent ({fake_runbase.url})"
    )
    assert expected in good.stdout.splitlines(), good.stdout
    assert good.returncode == 0, good.stdout
    bad = await asyncio.to_thread(run_cli, fake_url, "check", RUNBASE_API_KEY="sk-not-the-right-key-at-all", **common)
    lines = bad.stdout.splitlines()
    refused = "runbase: FAILED: Runbase rejected the API key"
    assert any(line.startswith(refused) and "RUNBASE_API_KEY" in line for line in lines), bad.stdout
    assert bad.returncode == 1 and "(runbase)" in lines[-1], bad.stdout
    assert "sk-not-the-right-key-at-all" not in bad.stdout + bad.stderr
    assert fake_runbase.runs == {}
