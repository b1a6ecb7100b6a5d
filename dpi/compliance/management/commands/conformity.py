"""``manage.py conformity``: write docs/conformity.md from the measure catalogue (dpi/compliance/conformity.py)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from dpi.compliance.conformity import catalogue_markdown


class Command(BaseCommand):
    help = "Write docs/conformity.md from the CNIL measure catalogue (dpi/compliance/conformity.py)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="exit 1 if docs/conformity.md is out of date")

    def handle(self, *args, check: bool = False, **options):
        path = Path(settings.BASE_DIR) / "docs" / "conformity.md"
        text = catalogue_markdown()
        if check:
            if not path.exists() or path.read_text() != text:
                self.stderr.write("docs/conformity.md is out of date: run manage.py conformity")
                raise SystemExit(1)
            self.stdout.write("docs/conformity.md is up to date")
            return
        path.write_text(text)
        self.stdout.write(f"wrote {path}")
