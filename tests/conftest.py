"""Shared test setup: real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are set),
a cast of personas, and helpers to read audit events.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

pytest_plugins = ["tests.personas"]


def pytest_collection_modifyitems(items):
    # Every DB test may use the independent `audit` connection (denied accesses are recorded there).
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and "databases" not in marker.kwargs:
            item.add_marker(pytest.mark.django_db(databases="__all__", **marker.kwargs), append=False)


@pytest.fixture(autouse=True)
def _audit_witness_file(settings, tmp_path_factory, request):
    """Each test writes the audit checkpoints' witness to its own file (never to the checkout's var/)."""
    base = tmp_path_factory.getbasetemp() / "audit-witness"
    base.mkdir(exist_ok=True)
    settings.DPI_AUDIT_WITNESS_FILE = base / f"{abs(hash(request.node.nodeid))}.jsonl"
    settings.DPI_AUDIT_SYSLOG = ""
    settings.DPI_AUDIT_TSA_URL = ""


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture(scope="session", autouse=True)
def _close_connections_before_teardown(django_db_setup, django_db_blocker):
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        connections.close_all()


def pytest_unconfigure(config):
    """Nothing left behind: stop the embedded PostgreSQL / Redis that this test run started (without
    DATABASE_URL / REDIS_URL the settings start them); servers that were already running are left alone."""
    from dpi import embedded

    if not embedded.started():
        return
    from django.db import connections

    connections.close_all()
    stopped = embedded.stop_started()
    if stopped:
        print(f"\nembedded {' and '.join(stopped)} stopped.")


@pytest.fixture(scope="session", autouse=True)
def _demo_secrets_outside_the_checkout(tmp_path_factory):
    """Seeding in tests writes demo secrets (dpi.demo) under settings.VAR_DIR: a scratch folder, never the
    checkout's var/ (whose demo_accounts.json belongs to the developer's own `make run` database)."""
    from django.test import override_settings

    with override_settings(VAR_DIR=tmp_path_factory.mktemp("var")):
        yield
