"""PostgreSQL client tools (pg_dump, pg_restore) matching the server they talk to.

pg_dump refuses a server newer than itself, and a dump is best made by the tools of the server's own major
version. The embedded server (PostgreSQL 16 shipped by ``pgserver``) brings its tools; with ``DATABASE_URL``
the tools are looked for in ``DPI_PG_BIN_DIR``, then Debian's ``/usr/lib/postgresql/<major>/bin``, then ``PATH``.
Connection parameters go through libpq environment variables, so no password appears on a command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings


class PgToolError(Exception):
    pass


@dataclass(frozen=True)
class Database:
    """Where a database is: the fields of a Django DATABASES entry that libpq needs."""

    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, entry: dict[str, Any]) -> Database:
        opts = tuple(sorted((str(k), str(v)) for k, v in (entry.get("OPTIONS") or {}).items()))
        return cls(name=entry["NAME"], user=entry.get("USER") or "", password=entry.get("PASSWORD") or "",
                   host=entry.get("HOST") or "", port=str(entry.get("PORT") or ""), options=opts)

    @classmethod
    def from_url(cls, url: str) -> Database:
        from dpi.settings import database_from_url

        return cls.from_settings(database_from_url(url))

    def with_name(self, name: str) -> Database:
        return Database(name, self.user, self.password, self.host, self.port, self.options)

    def libpq_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        pairs = {"PGDATABASE": self.name, "PGUSER": self.user, "PGPASSWORD": self.password, "PGHOST": self.host,
                 "PGPORT": self.port}
        env.update({k: v for k, v in pairs.items() if v})
        known = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
                 "sslkey": "PGSSLKEY", "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME"}
        for key, value in self.options:
            if key in known:
                env[known[key]] = value
        return env

    def connect(self, **kwargs):
        import psycopg

        params = {"dbname": self.name, "user": self.user, "password": self.password, "host": self.host,
                  "port": self.port, **dict(self.options)}
        return psycopg.connect(**{k: v for k, v in params.items() if v}, **kwargs)

    def server_version_num(self) -> int:
        with self.connect() as conn:
            return int(conn.execute("SHOW server_version_num").fetchone()[0])

    def is_empty(self) -> bool:
        """No table, view, sequence or function of its own (only what template0/1 brings)."""
        with self.connect() as conn:
            count = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
                "AND n.nspname NOT LIKE 'pg_temp%%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
            ).fetchone()[0]
            funcs = conn.execute(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchone()[0]
        return count == 0 and funcs == 0


def major_of(version_num: int) -> int:
    return version_num // 10000


def default_database() -> Database:
    return Database.from_settings(settings.DATABASES["default"])


def _tool_major(path: Path) -> int | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True,  # noqa: S603
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def _candidate_dirs(major: int) -> list[Path]:
    dirs: list[Path] = []
    configured = getattr(settings, "DPI_PG_BIN_DIR", "")
    if configured:
        dirs.append(Path(configured))
    try:
        from dpi.embedded import postgres_bin_dir

        dirs.append(postgres_bin_dir())
    except ImportError:  # pgserver not installed: DATABASE_URL deployments
        pass
    dirs.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    debian = Path("/usr/lib/postgresql")
    dirs += sorted(debian.glob("*/bin"), reverse=True) if debian.exists() else []
    found = shutil.which("pg_dump")
    if found:
        dirs.append(Path(found).parent)
    return dirs


def find_tool(name: str, *, server_major: int, at_least: int | None = None) -> tuple[Path, int]:
    """The client tool ``name`` of the server's major version, or the closest newer one.

    ``at_least``: the lowest acceptable major (pg_restore must be at least as new as the pg_dump that wrote
    the archive).
    """
    floor = max(server_major, at_least or 0)
    best: tuple[Path, int] | None = None
    seen: set[Path] = set()
    for directory in _candidate_dirs(server_major):
        path = (directory / name).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        major = _tool_major(path)
        if major is None or major < floor:
            continue
        if major == floor:
            return path, major
        if best is None or major < best[1]:
            best = (path, major)
    if best is None:
        raise PgToolError(f"no {name} of PostgreSQL {floor} or newer found (set DPI_PG_BIN_DIR)")
    return best
