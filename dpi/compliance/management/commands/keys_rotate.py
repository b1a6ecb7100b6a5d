"""``manage.py keys_rotate PURPOSE``: add a new current version for the backup, archive or audit-signing key.

Old versions stay in the keyring: they still open older backups, archives and signatures. The live data key
is rotated by ``manage.py rotate_keys`` (it also re-encrypts every row); the blind-index key cannot be rotated
in place (every INS search index would have to be recomputed).
"""

from django.core.management.base import BaseCommand, CommandError

from dpi import crypto

ROTATABLE = ("backup", "archive", "audit_signing")


class Command(BaseCommand):
    help = "Add a new version of the backup, archive or audit_signing key (old versions are kept)."

    def add_arguments(self, parser):
        parser.add_argument("purpose", choices=[*ROTATABLE, "data", "blind_index"])

    def handle(self, *args, purpose: str, **options):
        if purpose == "data":
            raise CommandError("use manage.py rotate_keys: it adds the data key version and re-encrypts every row")
        if purpose == "blind_index":
            raise CommandError("the blind-index key is not rotated in place (see docs/keys.md)")
        ring = crypto.keyring()
        version = ring.add_version(purpose)
        ring.save()
        crypto.reload_keyring()
        self.stdout.write(self.style.SUCCESS(
            f"{purpose}: new version v{version} is current; older versions kept. Escrow the updated keyring, then "
            "restart web, worker and beat so every process uses it."))
