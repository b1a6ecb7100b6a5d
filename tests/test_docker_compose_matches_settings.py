"""Docker cannot run on CI machines: check the compose file against what the settings read instead."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_variables() -> set[str]:
    src = (ROOT / "dpi" / "settings.py").read_text()
    return set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z0-9_]+)"', src))


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


def test_web_and_worker_scale_out_behind_one_proxy_with_migrations_run_once():
    """`docker compose up --scale web=N --scale worker=M` (docs/deployment.md): scaled services have no fixed
    container name or host port, the proxy re-resolves every web replica, migrations run in one one-shot
    service that every app service waits for, and there is one beat."""
    services = compose()["services"]
    for name in ("web", "worker"):
        assert "container_name" not in services[name], name
        assert not any(":" in str(port) for port in services[name].get("ports", [])), f"{name} publishes a host port"
    commands = {name: " ".join(map(str, s.get("command", []))) for name, s in services.items()}
    assert [name for name, command in commands.items() if "migrate" in command] == ["migrate"]
    for name in ("web", "worker", "beat", "hl7"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    assert services["proxy"]["ports"] == ["8000:8000"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in nginx and "set $web http://web:8000;" in nginx and "proxy_pass $web;" in nginx
    proxy_ip = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert proxy_ip in _compose_value(services["web"]["environment"]["DPI_TRUSTED_PROXIES"]).split(",")


def test_every_setting_variable_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in settings_variables() if f"`{v}`" not in readme)
    assert not missing, f"undocumented environment variables: {missing}"


# --- static files: the compose stack serves them the way `make run` does ------------------------------------
STATIC_PROBE = r"""
import json, django
django.setup()
from django.conf import settings
from django.templatetags.static import static
from django.test import Client
client = Client()
out = {"middleware": settings.MIDDLEWARE, "storage": settings.STORAGES["staticfiles"]["BACKEND"]}
for name in ("dpi.css", "dpi.js", "admin/js/autocomplete.js",
             "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"):
    url = static(name)
    r = client.get(url, secure=True, HTTP_HOST="localhost", HTTP_ACCEPT_ENCODING="gzip")
    out[name] = {"url": url, "status": r.status_code, "type": r.get("Content-Type", ""),
                 "cache": r.get("Cache-Control", ""), "encoding": r.get("Content-Encoding", "")}
print(json.dumps(out))
"""


def _compose_value(value: str) -> str:
    """``${NAME:-default}`` as compose would expand it with NAME unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def _dockerfile_static_root() -> str:
    src = (ROOT / "Dockerfile").read_text()
    match = re.search(r"DPI_STATIC_ROOT=(\S+)", src)
    assert match, "the Dockerfile sets no DPI_STATIC_ROOT"
    assert "collectstatic" in src, "the Dockerfile does not collect static files into the image"
    return match.group(1)


def test_compose_web_serves_static_files_hashed_compressed_and_cached(tmp_path):
    """The image collects static files at build time and the web service (gunicorn + WhiteNoise, production
    settings as compose sets them) serves dpi.css, dpi.js, the admin's and Swagger UI's scripts."""
    import json
    import os
    import subprocess
    import sys

    services = compose()["services"]
    web_cmd = " ".join(services["web"]["command"])
    assert "gunicorn -c python:dpi.gunicorn_conf dpi.wsgi:application" in web_cmd  # JSON logs, no query strings
    assert _dockerfile_static_root() == "/app/staticfiles"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DPI_", "DATABASE_", "REDIS_", "PYTEST"))}
    env.update({k: _compose_value(v) for k, v in services["web"]["environment"].items()})
    secret = tmp_path / "secret_key"
    secret.write_text("compose-test-secret-key-" + "x" * 40)
    keyring = tmp_path / "keyring.json"  # must exist in production; serving static files never reads it
    keyring.write_text("{}")
    env.update(
        {
            "DPI_SECRET_KEY_FILE": str(secret),
            "DPI_KEYRING_FILE": str(keyring),
            "DPI_STATIC_ROOT": str(tmp_path / "staticfiles"),  # the image's /app/staticfiles, here
            "DPI_VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SETTINGS_MODULE": "dpi.settings",
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    done = subprocess.run(
        [sys.executable, "-c", STATIC_PROBE], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in out["middleware"]
    assert out["storage"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    for name, expected_type in (
        ("dpi.css", "text/css"),
        ("dpi.js", "text/javascript"),
        ("admin/js/autocomplete.js", "text/javascript"),
        ("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js", "text/javascript"),
    ):
        got = out[name]
        assert got["status"] == 200, (name, got)
        assert got["type"].startswith(expected_type), (name, got)
        assert re.search(r"\.[0-9a-f]{12}\.", got["url"]), f"{name} is not served under a hashed name: {got}"
        assert "immutable" in got["cache"] and "max-age=" in got["cache"], (name, got)
        assert got["encoding"] == "gzip", (name, got)
