#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpi.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    finally:
        _stop_embedded()


def _stop_embedded() -> None:
    """Without DATABASE_URL / REDIS_URL the settings start embedded servers: stop those this command started
    (servers already running, e.g. under `make run`, are reused and left alone)."""
    from dpi import embedded

    if not embedded.started():
        return
    from django.db import connections

    connections.close_all()
    embedded.stop_started()


if __name__ == "__main__":
    main()
