"""``manage.py backup``: an encrypted, authenticated dump of the database (see dpi.compliance.backups)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dpi.compliance import backups
from dpi.compliance.pgtools import Database, PgToolError


class Command(BaseCommand):
    help = "Dump the database through chunked AES-256-GCM into DPI_BACKUP_DIR, with an authenticated manifest."

    def add_arguments(self, parser):
        parser.add_argument("--output-dir", type=Path, default=None, help="default: DPI_BACKUP_DIR")
        parser.add_argument("--database-url", default="", help="default: the application's database")
        parser.add_argument("--keep", type=int, default=0,
                            help="then delete all but the N most recent backups (0: keep everything)")
        parser.add_argument("--verify", action="store_true", help="decrypt the new file once to check it")

    def handle(self, *args, output_dir, database_url: str, keep: int, verify: bool, **options):
        database = Database.from_url(database_url) if database_url else None
        try:
            path = backups.backup_create(directory=output_dir, database=database)
            if verify:
                backups.backup_verify(path)
        except (backups.BackupError, backups.BackupRejected, PgToolError) as exc:
            raise CommandError(str(exc)) from exc
        manifest = backups.manifest_read(path)
        self.stdout.write(self.style.SUCCESS(
            f"{path} ({manifest['ciphertext_size']} bytes, backup key v{manifest['key_version']}, "
            f"sha256 {manifest['ciphertext_sha256'][:16]}...)"))
        if keep:
            for old in backups.backup_prune(keep=keep, directory=output_dir or settings.DPI_BACKUP_DIR):
                self.stdout.write(f"  removed {old.name}")
