"""Shared fixtures for the compliance backup tests: scratch databases on the test server.

pg_dump sees only committed data, so the seeded source lives in its own database (created, migrated and seeded
by real ``manage.py`` runs), never in the test transaction. Names derive from the test database name so that
parallel runs with other DPI_TEST_DATABASE_NAME values do not collide. (No tests here.)
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from dpi.compliance.pgtools import Database

ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def url_of(db: Database) -> str:
    auth = quote(db.user) + (":" + quote(db.password) if db.password else "") if db.user else ""
    if db.host.startswith("/"):
        return f"postgresql://{auth}@/{db.name}?host={db.host}" + (f"&port={db.port}" if db.port else "")
    host = db.host + (f":{db.port}" if db.port else "")
    return f"postgresql://{auth}@{host}/{db.name}"


def manage(db: Database, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``manage.py`` against ``db`` in a child process (its own Django, its own connections)."""
    full_env = {**os.environ, "DATABASE_URL": url_of(db), **(env or {})}
    proc = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


class Scratch:
    """Creates and drops databases next to the test database."""

    def __init__(self, base: Database):
        self.base = base
        self.created: list[str] = []

    def create(self, label: str) -> Database:
        name = f"{self.base.name}_{label}_{next(_counter)}"[:63]
        with self.base.with_name("postgres").connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.base.with_name(name)

    def drop_all(self) -> None:
        with self.base.with_name("postgres").connect(autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Each test module that imports these fixtures gets its own copy of them (pytest binds fixtures per module),
# so the databases are memoised here: created once per run, dropped when the last copy is torn down.
_memo: dict[str, object] = {}


@pytest.fixture(scope="session")
def scratch(django_db_setup) -> Scratch:
    from django.db import connections

    if "scratch" not in _memo:
        _memo["scratch"] = Scratch(Database.from_settings(connections["default"].settings_dict))
    _memo["users"] = int(_memo.get("users", 0)) + 1
    yield _memo["scratch"]
    _memo["users"] = int(_memo["users"]) - 1
    if not _memo["users"]:
        _memo.pop("scratch").drop_all()
        _memo.pop("source", None)


@pytest.fixture(scope="session")
def seeded_source(scratch) -> Database:
    """A migrated database with 20 seeded synthetic patients (committed), shared by the backup tests."""
    if "source" not in _memo:
        db = scratch.create("src")
        manage(db, "migrate", "--verbosity=0")
        manage(db, "seed", "--patients=20", "--seed=5")
        _memo["source"] = db
    return _memo["source"]


def verified_login(client, user):
    """Signed in with a verified second factor, whatever the sign-in steps ask of this role."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()


def table_fingerprints(db: Database) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent hash of every table's rows, plus every sequence's position."""
    out: dict[str, tuple[int, str]] = {}
    with db.connect() as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1")]
        for t in tables:
            count, digest = conn.execute(
                f'SELECT count(*), md5(coalesce(string_agg(md5(x::text), \'\' ORDER BY md5(x::text)), \'\')) '  # noqa: S608
                f'FROM "{t}" x').fetchone()
            out[t] = (count, digest)
        for (seq,) in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"):
            out[f"seq:{seq}"] = (conn.execute(f'SELECT last_value FROM "{seq}"').fetchone()[0], "")  # noqa: S608
    return out


def raw_column(db: Database, table: str, column: str) -> dict[int, str]:
    with db.connect() as conn:
        return {pk: value for pk, value in conn.execute(f'SELECT id, "{column}" FROM "{table}" ORDER BY id')}  # noqa: S608
