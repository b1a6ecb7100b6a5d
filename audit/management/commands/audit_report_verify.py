"""``manage.py audit_report_verify FILE``: check the signature of a verification report (JSON or PDF)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import verification_report


class Command(BaseCommand):
    help = "Check the Ed25519 signature of an audit verification report; exits non-zero when it does not verify."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--public-key", help="the audit-signing public key (PEM or hex) the DPO kept")

    def handle(self, *args, **options):
        trusted = None
        if options["public_key"]:
            trusted = verification_report.load_public_key(Path(options["public_key"]).read_bytes())
        result = verification_report.check(Path(options["file"]).read_bytes(), trusted)
        if not result.valid:
            raise CommandError(f"{options['file']}: NOT VALID: {result.reason}")
        self.stdout.write(self.style.SUCCESS(f"{options['file']}: {result.kind.upper()} {result.reason}"))
        if result.report and result.report.get("verification"):
            v = result.report["verification"]
            self.stdout.write(f"verification #{v['id']} finished {v['finished_at']}: "
                              f"{'intact' if v['ok'] else 'BROKEN'} - {v['message']}")
