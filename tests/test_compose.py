"""docker-compose.yml against the Dockerfile: what each bot container reads is there, and its health check means a
connected bot. (`docker compose` is not run here; the YAML is read as compose reads it, merge keys included.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BOTS = ("bot-a", "bot-b")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_each_bot_serves_healthz_on_the_port_the_image_health_check_asks() -> None:
    """Both bots set ATELIER_METRICS_PORT (else the image's HEALTHCHECK passes without asking anything), and the
    HEALTHCHECK asks /healthz at that variable's port."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    check = re.search(r"^HEALTHCHECK .*?\n(.*)$", dockerfile, re.MULTILINE)
    assert check is not None
    assert "os.environ.get('ATELIER_METRICS_PORT'" in check.group(1) and "/healthz" in check.group(1)
    services = _compose()["services"]
    for name in BOTS:
        port = services[name]["environment"].get("ATELIER_METRICS_PORT")
        assert port is not None and 1 <= int(port) <= 65535, name


def test_each_bot_reads_the_mounted_config_whatever_env_says() -> None:
    """ATELIER_CONFIG is set in each bot's `environment` (which wins over `env_file`: `atelier init`'s .env says
    `atelier.toml`, missing in the container) to the file mounted into it; each bot has its own shard range and the
    shared PostgreSQL database."""
    services = _compose()["services"]
    ranges = []
    for name in BOTS:
        service = services[name]
        environment = service["environment"]
        mounted = [volume.split(":")[1] for volume in service["volumes"]]
        assert environment["ATELIER_CONFIG"] in mounted, name
        assert environment["ATELIER_DATABASE"].startswith("postgresql://"), name
        ranges.append(environment["ATELIER_SHARDS"])
    assert ranges == ["0-0/2", "1-1/2"]


def test_the_readme_migrates_with_the_service_compose_builds() -> None:
    """The README's migrate example runs the compose service (whose image compose builds), not an image tag."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docker compose run --rm -v atelier-data:/data bot-a migrate-to-postgres " in readme
    assert "atelier migrate-to-postgres" not in readme
