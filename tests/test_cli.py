"""`python -m bot generate` as a subprocess against a standalone fake Runware: files, cost, refusals."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.cli import DEFAULT_SUBCOMMAND, SUBCOMMANDS
from bot.images import decode_image
from bot.storage.database import Database
from bot.storage.meta import MetaRepository
from bot.storage.migrate import latest_version
from fakes.runware import DEFAULT_API_KEY
from tests.invite import INVITE_PERMISSIONS

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = "config/atelier.toml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    """A standalone fake Runware (`python -m fakes.runware --port 0`) shared by this module's tests."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fakes.runware", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("RUNWARE_API_URL="), line
        yield line.removeprefix("RUNWARE_API_URL=")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def admin(fake_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the fake's admin surface (GET, or POST with a JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        fake_url.removesuffix("/v1") + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(autouse=True)
def fresh_fake(fake_url: str) -> None:
    """Every test starts with a fake that has seen nothing."""
    admin(fake_url, "/_fake/reset", {})


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """config/atelier.toml with polling shortened (first poll after 2 s in production; the fake answers at once)."""
    text = (REPO_ROOT / CONFIG).read_text(encoding="utf-8")
    for old, new in (
        ("poll_initial_delay_seconds = 2.0", "poll_initial_delay_seconds = 0.02"),
        ("poll_max_interval_seconds = 5.0", "poll_max_interval_seconds = 0.1"),
    ):
        assert old in text, f"config/atelier.toml no longer has {old!r}"
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp("config") / "atelier.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_cli(fake_url: str, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` with the fake's URL and key (overridable via `env`).

    It runs in an empty working directory (or `cwd`), never the repository root: a developer's own `.env` there
    (with a real DISCORD_TOKEN) must not be read by the tests, and `data/` must not be created in the checkout.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RUNWARE_", "ATELIER_", "DISCORD_", "LOG_LEVEL"))
    }
    environment |= {"PYTHONPATH": str(REPO_ROOT), "RUNWARE_API_URL": fake_url, "RUNWARE_API_KEY": DEFAULT_API_KEY}
    environment |= {"ATELIER_CONFIG": str(REPO_ROOT / CONFIG)} | env
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=cwd or empty,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def write_png(path: Path, size: tuple[int, int] = (300, 200)) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 120, 220)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def assert_one_clear_line(result: subprocess.CompletedProcess[str], phrase: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert phrase in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_generate_saves_a_decodable_image_and_prints_its_cost(fake_url: str, tmp_path: Path) -> None:
    """A Mini generation writes `<task>-1.png` (1024x1024, from the config defaults) and prints `cost: $0.011`."""
    out = tmp_path / "out"
    result = run_cli(fake_url, "generate", "a red fox", "--model", "gpt-image-1-mini", "--out", str(out))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "cost: $0.011"
    [path_line] = lines[:-1]
    path = Path(path_line)
    assert path.parent == out
    assert re.fullmatch(r"[0-9a-f]{8}-1\.png", path.name)
    decoded = decode_image(path.read_bytes())
    assert (decoded.format, decoded.width, decoded.height) == ("PNG", 1024, 1024)

    stats = admin(fake_url, "/_fake/stats")
    assert len(stats["paid_tasks"]) == 1
    assert stats["paid_tasks"][0].startswith(path.name[:8])
    [task] = admin(fake_url, "/_fake/requests?task_type=imageInference")
    assert task["positivePrompt"] == "a red fox"
    assert task["includeCost"] is True


def test_generate_uploads_references_and_sends_their_uuids(fake_url: str, fast_config: str, tmp_path: Path) -> None:
    """Each reference file is normalised, uploaded once, and its UUID sent under inputs.referenceImages."""
    reference = write_png(tmp_path / "photo.png", size=(3000, 1000))
    result = run_cli(
        fake_url,
        "generate",
        "the same, in watercolour",
        "--size",
        "1536x1024",
        "--count",
        "2",
        "--format",
        "webp",
        "--reference",
        str(reference),
        "--out",
        str(tmp_path),
        ATELIER_CONFIG=fast_config,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[-1] == "cost: $0.03"
    for line in lines[:2]:
        decoded = decode_image(Path(line).read_bytes())
        assert (decoded.format, decoded.width, decoded.height) == ("WEBP", 1536, 1024)
    [upload] = admin(fake_url, "/_fake/requests?task_type=imageUpload")
    assert upload["image"].startswith("data:image/jpeg;base64,")
    [task] = admin(fake_url, "/_fake/requests?task_type=imageInference")
    [reference_uuid] = task["inputs"]["referenceImages"]
    assert re.fullmatch(r"[0-9a-f-]{36}", reference_uuid)


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        pytest.param(["a fox", "--model", "dall-e-3"], "unknown model 'dall-e-3'", id="unknown-model"),
        pytest.param(["a fox", "--size", "512x512"], "size '512x512' is not offered", id="512x512"),
        pytest.param([""], "the prompt is empty", id="empty-prompt"),
        pytest.param(["x" * 40_000], "the prompt has 40,000 characters", id="40000-char-prompt"),
        pytest.param(["a fox", "--count", "5"], "count must be between 1 and 4", id="count-5"),
        pytest.param(["a fox", "--background", "transparent", "--format", "jpg"], "needs png or webp", id="jpg-alpha"),
        pytest.param(["a fox", *["--reference", "REF"] * 17], "17 reference images given", id="17-references"),
        pytest.param(["a fox", "--reference", "TEXT"], "notes.txt: The file is not an image", id="text"),
        pytest.param(["a fox", "--reference", "missing.png"], "reference missing.png: cannot read it", id="missing"),
        pytest.param(["a fox", "--reference", "CUT"], "cut.png: The image is corrupt or truncated", id="truncated"),
        pytest.param(
            ["a fox", "--reference", "BIG"], "big.png: 26,214,401 bytes is more than the 26,214,400", id="26MB"
        ),
        pytest.param(["a", "--model", "gpt-image-1.5"], "needs a prompt of at least 2 characters", id="short-prompt"),
        pytest.param(["a fox", "--quality", "ultra"], "quality 'ultra' is not offered", id="quality"),
        pytest.param(["a fox", "--format", "gif"], "format 'gif' is not offered", id="format"),
        pytest.param(["a fox", "--count", "0"], "count must be between 1 and 4", id="count-0"),
        pytest.param(["a fox", "--count", "two"], "argument --count: invalid int value", id="count-not-a-number"),
    ],
)
def test_bad_input_is_refused_locally_before_any_request(
    fake_url: str, tmp_path: Path, args: list[str], phrase: str
) -> None:
    """Each bad input exits 2 with one clear line on stderr, and the fake sees no request at all."""
    reference = write_png(tmp_path / "ok.png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(reference.read_bytes()[:-40])
    oversized = tmp_path / "big.png"
    with oversized.open("wb") as file:
        file.truncate(25 * 1024 * 1024 + 1)  # sparse: refused from its size, before it is read
    text = tmp_path / "notes.txt"
    text.write_text("a red fox, please\n", encoding="utf-8")
    files = {"REF": reference, "CUT": truncated, "BIG": oversized, "TEXT": text}
    args = [str(files[arg]) if arg in files else arg for arg in args]
    result = run_cli(fake_url, "generate", *args, "--out", str(tmp_path / "out"))

    assert result.returncode == 2
    assert_one_clear_line(result, phrase)
    assert result.stdout == ""
    assert admin(fake_url, "/_fake/stats")["requests"] == 0
    assert not (tmp_path / "out").exists()


def test_a_stricter_config_limit_is_enforced_too(fake_url: str, tmp_path: Path) -> None:
    """`[limits] max_count = 2` refuses `--count 3` locally, although the models would take up to 4."""
    text = (REPO_ROOT / CONFIG).read_text(encoding="utf-8")
    assert "max_count = 4" in text
    config = tmp_path / "atelier.toml"
    config.write_text(text.replace("max_count = 4", "max_count = 2"), encoding="utf-8")
    result = run_cli(fake_url, "generate", "a fox", "--count", "3", ATELIER_CONFIG=str(config))
    assert result.returncode == 2
    assert_one_clear_line(result, "count must be between 1 and 2 (got 3)")
    assert admin(fake_url, "/_fake/stats")["requests"] == 0


@pytest.mark.parametrize(
    ("env", "phrase"),
    [
        pytest.param({"ATELIER_CONFIG": "config/nope.toml"}, "ATELIER_CONFIG: file not found", id="no-config"),
        pytest.param({"RUNWARE_API_KEY": ""}, "RUNWARE_API_KEY: is empty, but it is required", id="empty-key"),
        pytest.param({"RUNWARE_API_URL": "ftp://example"}, "RUNWARE_API_URL: ", id="bad-url"),
        pytest.param({"RUNWARE_API_URL": "http://"}, "RUNWARE_API_URL: must be a URL", id="url-without-host"),
        pytest.param({"ATELIER_DEV_GUILD": "-5"}, "ATELIER_DEV_GUILD: must be a Discord server id", id="bad-guild"),
    ],
)
def test_settings_errors_are_one_line_and_exit_2(fake_url: str, env: dict[str, str], phrase: str) -> None:
    """A missing or malformed setting names the variable on one line, no traceback, exit status 2."""
    result = run_cli(fake_url, "generate", "a fox", **env)
    assert result.returncode == 2
    assert_one_clear_line(result, phrase)
    assert admin(fake_url, "/_fake/stats")["requests"] == 0


def test_runware_errors_are_one_line_with_exit_1_and_never_show_the_key(fake_url: str, tmp_path: Path) -> None:
    """A rejected key prints the user message on one line, exit status 1, and the key is nowhere in the output."""
    secret = "sk-not-the-right-key-42"
    result = run_cli(fake_url, "generate", "a fox", "--out", str(tmp_path), RUNWARE_API_KEY=secret)
    assert result.returncode == 1
    assert_one_clear_line(result, "Runware rejected the API key: check RUNWARE_API_KEY. Nothing was spent")
    assert secret not in result.stdout + result.stderr


def test_content_refusal_is_reported_with_exit_1(fake_url: str, fast_config: str, tmp_path: Path) -> None:
    """A task refused under the content policy prints Runware's refusal sentence and saves nothing."""
    admin(fake_url, "/_fake/fail", {"fault": "content_policy"})
    result = run_cli(fake_url, "generate", "a fox", "--out", str(tmp_path / "out"), ATELIER_CONFIG=fast_config)
    assert result.returncode == 1
    assert_one_clear_line(result, "Runware refused this request under its content policy. Nothing was spent")
    assert not (tmp_path / "out").exists()


def test_bare_command_runs_the_bot_and_needs_a_token(fake_url: str) -> None:
    """With no subcommand the bot runs, so without DISCORD_TOKEN it stops with one line naming it and exit 2."""
    result = run_cli(fake_url)
    assert result.returncode == 2
    assert_one_clear_line(result, "DISCORD_TOKEN")


def test_every_contract_subcommand_is_registered() -> None:
    """The contract's `run`, `generate`, `check`, `invite` (§5.2), plus `backup`, `init`, `report` and issue 12's
    `migrate-to-postgres`; `run` is the default."""
    assert set(SUBCOMMANDS) == {"run", "generate", "check", "invite", "backup", "init", "report", "migrate-to-postgres"}
    assert DEFAULT_SUBCOMMAND == "run"


def test_invite_reads_the_application_id_from_the_token(fake_url: str) -> None:
    """`invite` prints an OAuth2 URL with both scopes, exactly the README's permissions and the id in the token."""
    token = base64.b64encode(b"987654321").decode().rstrip("=") + ".Gabc12.signature"
    result = run_cli(fake_url, "invite", DISCORD_TOKEN=token)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?")
    assert "client_id=987654321" in url
    assert "scope=bot+applications.commands" in url
    permissions = int(url.split("permissions=")[1].split("&")[0])
    # Exactly the list in the README (Create the Discord application): nothing more, so adding a permission (say
    # Administrator) is a decision that has to change this test and the README.
    assert permissions == INVITE_PERMISSIONS == 274_878_024_704


def test_a_dotenv_file_in_the_working_directory_is_read(fake_url: str, tmp_path: Path) -> None:
    """DISCORD_TOKEN from `./.env` (README: Configuration) is used when the environment does not set it."""
    token = base64.b64encode(b"123456789").decode().rstrip("=") + ".Gabc12.signature"
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={token}\n", encoding="utf-8")
    result = run_cli(fake_url, "invite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "client_id=123456789" in result.stdout


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        pytest.param(b"RUNWARE_API_KEY=caf\xe9\n", ".env: is not valid UTF-8 (line 1)", id="latin-1"),
        pytest.param(None, ".env: cannot be read", id="a-folder"),
    ],
)
def test_a_broken_dotenv_file_is_one_line_and_exit_2(
    fake_url: str, tmp_path: Path, content: bytes | None, phrase: str
) -> None:
    """A `.env` that is not UTF-8, or cannot be read, is named on one line with exit status 2, no traceback."""
    if content is None:
        (tmp_path / ".env").mkdir()
    else:
        (tmp_path / ".env").write_bytes(content)
    result = run_cli(fake_url, "generate", "a fox", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_clear_line(result, phrase)
    assert admin(fake_url, "/_fake/stats")["requests"] == 0


def test_empty_values_in_dotenv_fall_back_to_the_defaults(fake_url: str, fast_config: str, tmp_path: Path) -> None:
    """`ATELIER_DATABASE=`, `LOG_LEVEL=` and `DISCORD_TOKEN=` in `.env` count as unset: `check` uses the defaults."""
    (tmp_path / ".env").write_text("ATELIER_DATABASE=\nLOG_LEVEL=\nDISCORD_TOKEN=\n", encoding="utf-8")
    result = run_cli(fake_url, "check", cwd=tmp_path, ATELIER_CONFIG=fast_config)
    assert result.returncode == 1, result.stderr
    assert "discord: FAILED: DISCORD_TOKEN is empty: the bot cannot start without it" in result.stdout
    assert "database: ok: data/atelier.sqlite3 does not exist yet" in result.stdout
    assert result.stderr == ""


def test_invite_with_an_unreadable_token_says_so(fake_url: str) -> None:
    """A token whose first part is not an id is refused with one line and exit 2 (use --client-id instead)."""
    result = run_cli(fake_url, "invite", DISCORD_TOKEN="not-a-token")
    assert result.returncode == 2
    assert_one_clear_line(result, "DISCORD_TOKEN: is not a bot token")
    assert result.stdout == ""


@pytest.mark.parametrize(
    "client_id", ["0", "-5", "00", "abc", "12.5", "", "9223372036854775808"], ids=lambda value: value or "empty"
)
def test_invite_refuses_a_client_id_that_is_not_an_application_id(fake_url: str, client_id: str) -> None:
    """`--client-id` must be a positive snowflake (the ATELIER_DEV_GUILD rule): else one line, exit 2, no URL."""
    result = run_cli(fake_url, "invite", f"--client-id={client_id}")
    assert result.returncode == 2
    assert_one_clear_line(result, "argument --client-id: must be the bot's application id (a positive whole number")
    assert repr(client_id) in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("client_id", ["1", "1234567890123456789", "9223372036854775807"])
def test_invite_with_a_client_id_needs_no_token(fake_url: str, client_id: str) -> None:
    """A valid `--client-id` (up to the largest snowflake) gives its URL without DISCORD_TOKEN or a config file."""
    result = run_cli(fake_url, "invite", "--client-id", client_id, ATELIER_CONFIG="/nonexistent/atelier.toml")
    assert result.returncode == 0, result.stderr
    assert f"client_id={client_id}&" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("env", [{}, {"DISCORD_TOKEN": " "}], ids=["unset", "empty"])
def test_invite_without_a_token_points_at_client_id(fake_url: str, env: dict[str, str]) -> None:
    """No DISCORD_TOKEN: one line that says to set it or pass --client-id, exit 2, nothing on stdout."""
    result = run_cli(fake_url, "invite", **env)
    assert result.returncode == 2
    assert_one_clear_line(result, "DISCORD_TOKEN: ")
    assert "set it in the environment or .env, or pass --client-id APPLICATION_ID" in result.stderr
    assert result.stdout == ""


def test_check_without_a_token_verifies_the_key_spends_nothing_and_is_not_ready(fake_url: str, tmp_path: Path) -> None:
    """Without DISCORD_TOKEN, `check` verifies the key (nothing billed), creates no database, and says NOT READY."""
    database = tmp_path / "check.sqlite3"
    result = run_cli(fake_url, "check", ATELIER_DATABASE=str(database))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "config: ok" in result.stdout
    assert "database: ok" in result.stdout and "does not exist yet" in result.stdout
    assert "runware: ok: key accepted" in result.stdout
    assert "discord: FAILED: DISCORD_TOKEN is not set" in result.stdout
    assert result.stdout.splitlines()[-1] == "verdict: NOT READY: 1 check(s) failed (discord)"
    assert not database.exists()
    stats = admin(fake_url, "/_fake/stats")
    assert stats["paid_tasks"] == [] and stats["total_cost_micros"] == 0


def runware_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of `check`'s output about Runware."""
    return [line for line in result.stdout.splitlines() if line.startswith("runware:")]


def test_check_reports_a_wrong_key_with_exit_1(fake_url: str, tmp_path: Path) -> None:
    """A key Runware rejects makes `check` print one runware line naming RUNWARE_API_KEY (never the key), exit 1."""
    result = run_cli(fake_url, "check", ATELIER_DATABASE=str(tmp_path / "c.sqlite3"), RUNWARE_API_KEY="wrong-key-123")
    assert result.returncode == 1
    [line] = runware_lines(result)
    assert "RUNWARE_API_KEY" in line
    assert "wrong-key-123" not in result.stdout + result.stderr


@contextlib.contextmanager
def answering(status: int, body: str, content_type: str) -> Iterator[str]:
    """A server on 127.0.0.1 answering every request with `status` and `body`; yields its URL (ending in /v1)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        pytest.param(
            404,
            "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>",
            "text/html",
            id="404-html",
        ),
        pytest.param(405, "405: Method Not Allowed", "text/plain", id="405-text"),
    ],
)
def test_check_fails_when_runware_api_url_does_not_answer_like_runware(
    fake_url: str, tmp_path: Path, status: int, body: str, content_type: str
) -> None:
    """A RUNWARE_API_URL that answers a 404 page or a 405 (a typo in the URL) fails `check` with exit status 1 and
    one runware line naming RUNWARE_API_URL, even with a bogus key: nothing there showed the key works."""
    with answering(status, body, content_type) as url:
        result = run_cli(
            fake_url,
            "check",
            ATELIER_DATABASE=str(tmp_path / "c.sqlite3"),
            RUNWARE_API_URL=url,
            RUNWARE_API_KEY="bogus-key-456",
        )
    assert result.returncode == 1, result.stdout
    [line] = runware_lines(result)
    assert "RUNWARE_API_URL" in line and url in line and f"HTTP {status}" in line, line
    assert "key ok" not in result.stdout
    assert "bogus-key-456" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def migrated_database(folder: Path) -> Path:
    """A database at the latest schema, written by the real Database, with one row of its own."""
    path = folder / "data" / "atelier.sqlite3"

    async def create() -> None:
        async with await Database.open(path) as db:
            await MetaRepository(db).set("command_hash", "abc")

    asyncio.run(create())
    return path


def test_backup_writes_a_copy_and_says_what_it_wrote(fake_url: str, tmp_path: Path) -> None:
    """`backup PATH` writes a sound copy holding the database's rows and prints its path, size and schema version."""
    database = migrated_database(tmp_path)
    target = tmp_path / "atelier-backup.sqlite3"
    result = run_cli(fake_url, "backup", str(target), ATELIER_DATABASE=str(database))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"backup: wrote {target} ({target.stat().st_size:,} bytes, schema version {latest_version()}) from {database}"
    )
    with contextlib.closing(sqlite3.connect(target)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT value FROM meta WHERE key = 'command_hash'").fetchone()[0] == "abc"


@pytest.mark.parametrize("case", ["existing path", "missing folder", "no database", "not a database"])
def test_backup_refusals_are_one_line_exit_2_and_create_nothing(fake_url: str, tmp_path: Path, case: str) -> None:
    """An existing PATH, a missing folder and a missing (or foreign) database are refused: one line, exit 2, no
    file written and no database created."""
    database = tmp_path / "data" / "atelier.sqlite3"
    target = tmp_path / "backup.sqlite3"
    phrase = {
        "existing path": "already exists",
        "missing folder": "does not exist",
        "no database": "no database",
        "not a database": "not a usable SQLite database",
    }[case]
    if case == "no database":
        database.parent.mkdir()
    else:
        database = migrated_database(tmp_path)
    if case == "existing path":
        target.write_bytes(b"precious")
    elif case == "missing folder":
        target = tmp_path / "nowhere" / "backup.sqlite3"
    elif case == "not a database":
        database.unlink()
        database.write_bytes(b"not sqlite at all, but long enough to have a header" * 40)
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    database_bytes = database.read_bytes() if database.exists() else None
    result = run_cli(fake_url, "backup", str(target), ATELIER_DATABASE=str(database))
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(result, phrase)
    assert result.stdout == ""
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before
    assert (database.read_bytes() if database.exists() else None) == database_bytes
    if case == "existing path":
        assert target.read_bytes() == b"precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_backup_into_an_unwritable_folder_is_refused(fake_url: str, tmp_path: Path) -> None:
    """A folder the operator cannot write in is refused before the copy: one line, exit 2, nothing written."""
    database = migrated_database(tmp_path)
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    try:
        result = run_cli(fake_url, "backup", str(folder / "b.sqlite3"), ATELIER_DATABASE=str(database))
        assert result.returncode == 2
        assert_one_clear_line(result, "cannot write in the folder")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)
