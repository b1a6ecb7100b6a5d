"""Shared benchmark setup: a dedicated database ``dpi_bench`` on the same PostgreSQL server."""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager


def setup_django(db_name: str = "dpi_bench") -> None:
    """Point Django at ``db_name`` (created and migrated if needed) and configure it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    import psycopg

    from dpi import settings as s  # noqa: F401  (starts embedded services when URLs are unset)

    url = os.environ["DATABASE_URL"]
    base = s.database_from_url(url)
    conninfo = {
        "dbname": "postgres",
        "user": base["USER"] or None,
        "password": base["PASSWORD"] or None,
        "host": base["HOST"] or None,
        "port": base["PORT"] or None,
    }
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone():
            conn.execute(f'CREATE DATABASE "{db_name}"')
    os.environ["DATABASE_URL"] = _with_db(url, db_name)
    import django
    from django.conf import settings

    if not settings.configured or settings.DATABASES["default"]["NAME"] != db_name:
        for alias in ("default", "audit"):
            settings.DATABASES[alias]["NAME"] = db_name
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _with_db(url: str, db_name: str) -> str:
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(url)
    return urlunparse(parsed._replace(path="/" + db_name))


@contextmanager
def timer():
    t = {"s": 0.0}
    start = time.perf_counter()
    yield t
    t["s"] = time.perf_counter() - start


def free_port() -> int:
    """A TCP port free on the loopback interface right now (for a server the benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_connection(url: str):
    """An autocommit connection to the server's ``postgres`` database (create / drop a scratch database)."""
    from urllib.parse import urlparse, urlunparse

    import psycopg

    return psycopg.connect(urlunparse(urlparse(url)._replace(path="/postgres")), autocommit=True)
