"""``manage.py verify_signed_report FILE``: check the signature of a report signed by dpi (live conformity
state, audit verification report) with the audit signing key's public half. Exit 1 when it does not verify."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dpi.compliance.signed_reports import verify


class Command(BaseCommand):
    help = "Verify the Ed25519 signature dpi appends to the reports it signs (exit 1 if invalid)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}") from exc
        result = verify(data)
        if not result.ok:
            self.stderr.write(self.style.ERROR(f"{file.name}: NOT VALID — {result.message}"))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(
            f"{file.name}: signature valid (audit signing key v{result.key_version}, sha256 {result.sha256})"))
