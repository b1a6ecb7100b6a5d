"""Docker cannot run on CI machines: check the compose file against what the settings read instead."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_variables() -> set[str]:
    src = (ROOT / "dpi" / "settings.py").read_text()
    return set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', src))


def test_services_and_health_checks():
    services = compose()["services"]
    assert {"db", "redis", "web", "worker", "beat"} <= set(services)
    for name in ("db", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], name
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_app_services_share_an_environment_the_settings_read():
    services = compose()["services"]
    read = settings_variables()
    envs = [services[n]["environment"] for n in ("web", "worker", "beat")]
    assert envs[0] == envs[1] == envs[2]
    for var in envs[0]:
        base = var[: -len("_FILE")] if var.endswith("_FILE") and var not in read else var
        assert base in read, f"{var} is set in docker-compose.yml but dpi/settings.py never reads it"
    assert {"DATABASE_URL", "REDIS_URL", "DPI_PRODUCTION"} <= set(envs[0])


def test_every_setting_variable_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in settings_variables() if f"`{v}`" not in readme)
    assert not missing, f"undocumented environment variables: {missing}"
