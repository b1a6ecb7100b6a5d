"""``manage.py dpo_documents --out DIR``: write the register entry (art. 30), the DPIA inputs and the patient
information notice (French) generated from this instance's configuration."""

from pathlib import Path

from django.core.management.base import BaseCommand

from dpi.compliance.documents import all_documents


class Command(BaseCommand):
    help = "Write the art. 30 register entry, the DPIA inputs (text + JSON) and the patient notice (French)."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=Path("."), help="directory (default: current)")

    def handle(self, *args, out: Path, **options):
        out.mkdir(parents=True, exist_ok=True)
        for name, (_content_type, text) in all_documents().items():
            (out / name).write_text(text, encoding="utf-8")
            self.stdout.write(f"wrote {out / name}")
