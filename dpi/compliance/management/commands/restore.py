"""``manage.py restore FILE --database-url URL``: check a backup and restore it into an empty database."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dpi.compliance import backups
from dpi.compliance.pgtools import Database, PgToolError


class Command(BaseCommand):
    help = ("Verify a backup's manifest, checksum and authentication tags, then restore it into an EMPTY "
            "database (created beforehand with createdb). Refuses a non-empty target.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--database-url", default="",
                            help="postgresql://user:pass@host:port/newdb (required unless --verify-only)")
        parser.add_argument("--manifest", type=Path, default=None, help="default: FILE.json")
        parser.add_argument("--verify-only", action="store_true",
                            help="decrypt and check the whole file without restoring it")

    def handle(self, *args, file: Path, database_url: str, manifest, verify_only: bool, **options):
        try:
            if verify_only:
                body = backups.backup_verify(file, manifest)
                self.stdout.write(self.style.SUCCESS(
                    f"{file.name}: manifest, checksum and {body['chunks']} chunk tags verified"))
                return
            if not database_url:
                raise CommandError("--database-url is required (an empty database to restore into)")
            target = Database.from_url(database_url)
            body = backups.backup_restore(file, target=target, manifest=manifest)
        except backups.BackupRejected as exc:
            raise CommandError(f"backup refused: {exc}") from exc
        except (backups.BackupError, PgToolError) as exc:
            raise CommandError(str(exc)) from exc
        _record(file.name, target.name)
        self.stdout.write(self.style.SUCCESS(
            f"restored {file.name} (made {body['created_at']}) into {target.name}"))


def _record(name: str, target: str) -> None:
    """Trace the restore in the application's audit log when its database is reachable (best effort:
    a disaster-recovery restore may run before the live database exists)."""
    from django.db import DatabaseError, transaction

    from audit.services import event_record
    from dpi.compliance.models import RestoreTest

    try:
        with transaction.atomic():
            event_record(action="other", outcome="allowed", actor_role="system", actor_unit="backup",
                         resource_type="backup", resource_id=name, basis="system:backup",
                         details={"step": "restore", "target_database": target})
            # The DPO's live state shows the age of the last successful restore (restore tests, fiche 5).
            RestoreTest.objects.create(backup_name=name, target_database=target, ok=True)
    except DatabaseError:
        pass
