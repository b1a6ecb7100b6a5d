"""``manage.py audit_report``: the signed verification report (JSON or PDF) for the DPO and the CNIL."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from audit import verification_report
from audit.context import access_context


class Command(BaseCommand):
    help = ("Write the signed audit-trail verification report (latest run, or a fresh read-only verification "
            "with --verify); --public-key prints the key that checks it.")

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["json", "pdf"], default="json")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument("--verify", action="store_true",
                            help="run a read-only verification first (no chaining of queued events)")
        parser.add_argument("--public-key", action="store_true",
                            help="print the audit-signing public key (PEM) instead, for the DPO to keep")

    def handle(self, *args, **options):
        if options["public_key"]:
            blob = verification_report.public_key_pem()
        else:
            run = None
            if options["verify"]:
                from audit.verification import chain_verify

                with access_context(channel="worker"):
                    run = chain_verify(seal=False)
            data = verification_report.report_data(run)
            blob = (verification_report.signed_pdf(data) if options["format"] == "pdf"
                    else verification_report.signed_json(data))
        if options["output"]:
            Path(options["output"]).write_bytes(blob)
            self.stderr.write(f"written: {options['output']} ({len(blob)} bytes)")
        else:
            sys.stdout.buffer.write(blob)
