"""``manage.py keyring_status``: key versions per purpose, what they protect, what still needs old versions.

Prints key versions and counts only, never key material.
"""

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand

from dpi.compliance.keys import keyring_status


class Command(BaseCommand):
    help = "Show the keyring: versions per purpose, what each encrypts, rows and backups still using old versions."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="machine-readable output")

    def handle(self, *args, as_json: bool = False, **options):
        status = keyring_status()
        if as_json:
            self.stdout.write(json.dumps([{**asdict(s), "stale_total": s.stale_total} for s in status], indent=2))
            return
        for s in status:
            versions = ", ".join(f"v{v}" + (" (current)" if v == s.current else "") for v in s.versions)
            self.stdout.write(self.style.MIGRATE_HEADING(f"{s.purpose}: {versions}"))
            self.stdout.write(f"  protects: {s.protects}")
            if s.purpose == "data":
                if s.stale_total:
                    self.stdout.write(self.style.WARNING(
                        f"  {s.stale_total} values still under an older version (run rotate_keys --no-new-key):"))
                    for column, n in s.stale_rows.items():
                        if n:
                            self.stdout.write(f"    {column}: {n}")
                else:
                    self.stdout.write(f"  every encrypted column ({len(s.stale_rows)}) uses v{s.current}")
            if s.backups_by_version:
                needed = ", ".join(f"v{v}: {n} backup(s)" for v, n in sorted(s.backups_by_version.items()))
                self.stdout.write(f"  kept backups need: {needed}")
            old = [v for v in s.versions if v != s.current]
            if old and s.purpose in ("data", "backup"):
                still = [v for v in old if s.backups_by_version.get(v) or (s.purpose == "data" and s.stale_total)]
                if not still:
                    self.stdout.write(f"  old versions {old} are needed by no row and no kept backup")

