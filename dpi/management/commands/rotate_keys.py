"""Rotate the live data key: add a new key version, then re-encrypt every encrypted column in batches."""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from dpi import crypto


def encrypted_columns():
    for model in apps.get_models():
        if not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if getattr(field, "encrypted", False):
                yield model, field


def stale_filter(field, current: int) -> str:
    col = connection.ops.quote_name(field.column)
    if field.get_internal_type() == "BinaryField":
        return f"{col} IS NOT NULL AND substring({col} from 5 for 4) <> '\\x{current:08x}'::bytea"
    return f"{col} <> '' AND {col} NOT LIKE 'v{current}:%%'"


def count_stale(model, field, current: int) -> int:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT count(*) FROM {connection.ops.quote_name(model._meta.db_table)} "  # noqa: S608
            f"WHERE {stale_filter(field, current)}"
        )
        return cur.fetchone()[0]


def reencrypt(model, field, current: int, batch: int) -> int:
    """Re-encrypt rows of one column still under an older key version; returns rows done."""
    table = connection.ops.quote_name(model._meta.db_table)
    done = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute(
                    f"SELECT id FROM {table} WHERE {stale_filter(field, current)} "  # noqa: S608
                    f"ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    [batch],
                )
                ids = [r[0] for r in cur.fetchall()]
            if not ids:
                return done
            for obj in model.objects.filter(pk__in=ids).only("pk", field.attname):
                # Loading decrypts with the old version; saving encrypts with the current one.
                model.objects.filter(pk=obj.pk).update(**{field.attname: getattr(obj, field.attname)})
            done += len(ids)


class Command(BaseCommand):
    help = "Rotate the data encryption key (new version) and re-encrypt existing rows in batches."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=1000)
        parser.add_argument("--no-new-key", action="store_true", help="only re-encrypt rows under old versions")

    def handle(self, *args, batch: int, no_new_key: bool, **options):
        ring = crypto.keyring()
        if not no_new_key:
            version = ring.add_version("data")
            ring.save()
            crypto.reload_keyring()
            self.stdout.write(f"new data key version v{version}")
        current = crypto.keyring()["data"].current
        for model, field in encrypted_columns():
            n = reencrypt(model, field, current, batch)
            if n:
                self.stdout.write(f"  {model._meta.db_table}.{field.column}: {n} rows re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"all encrypted columns use v{current}"))
