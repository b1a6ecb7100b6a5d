"""``manage.py keys_init``: create the keyring file (every purpose, version 1). Refuses to overwrite one."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dpi import crypto


class Command(BaseCommand):
    help = "Generate a new keyring at DPI_KEYRING_FILE (or --path); never overwrites an existing file."

    def add_arguments(self, parser):
        parser.add_argument("--path", type=Path, default=None, help="default: DPI_KEYRING_FILE")

    def handle(self, *args, path: Path | None, **options):
        path = Path(path or settings.DPI_KEYRING_FILE)
        if path.exists():
            raise CommandError(f"{path} exists: a keyring is never regenerated (its keys decrypt your data); "
                               "rotate instead (docs/keys.md)")
        ring = crypto.Keyring.generate(path)
        self.stdout.write(self.style.SUCCESS(
            f"keyring written to {path} (mode 600): {', '.join(f'{p} v1' for p in ring.sets)}. "
            "Escrow it now (docs/keys.md)."))
