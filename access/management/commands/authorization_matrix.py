from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from access.docs import authorization_doc


class Command(BaseCommand):
    help = "Write docs/authorization.md from the matrix declared in access/policy.py."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")

    def handle(self, *args, check: bool, **options):
        path = Path(settings.BASE_DIR) / "docs" / "authorization.md"
        text = authorization_doc()
        if check:
            if not path.exists() or path.read_text() != text:
                self.stderr.write("docs/authorization.md is out of date: run manage.py authorization_matrix")
                raise SystemExit(1)
            return
        path.write_text(text)
        self.stdout.write(f"wrote {path}")
