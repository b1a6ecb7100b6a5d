"""Model fields whose values are AES-256-GCM ciphertext in PostgreSQL (see dpi.crypto)."""

from __future__ import annotations

from django.db import models

from dpi import crypto


class EncryptedTextField(models.TextField):
    """Free text stored encrypted; decrypted when loaded. Cannot be filtered on (by design)."""

    encrypted = True

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only=private_only)
        self.aad = f"{cls._meta.db_table}.{self.column}"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return crypto.decrypt_text(value, aad=self.aad)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt_text(value, aad=self.aad)

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)


class EncryptedCharField(EncryptedTextField):
    """Short identifier (NIR, social security number) stored encrypted; max_length applies to the plaintext."""

    def __init__(self, *args, plaintext_max_length: int = 64, **kwargs):
        self.plaintext_max_length = plaintext_max_length
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["plaintext_max_length"] = self.plaintext_max_length
        return name, path, args, kwargs

    def formfield(self, **kwargs):
        from django import forms

        return super().formfield(**{"form_class": forms.CharField, "max_length": self.plaintext_max_length, **kwargs})


class EncryptedBinaryField(models.BinaryField):
    """File contents stored encrypted (bytea with an 8-byte header naming the key version)."""

    encrypted = True

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only=private_only)
        self.aad = f"{cls._meta.db_table}.{self.column}"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        return crypto.decrypt_bytes(bytes(value), aad=self.aad)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return value
        return super().get_db_prep_value(crypto.encrypt_bytes(bytes(value), aad=self.aad), connection, prepared)


def encrypt_existing_rows(*columns: tuple[str, str]):
    """A migration operation encrypting the plaintext already in ``(table, column)`` pairs that became
    encrypted fields (and decrypting them back when the migration is reversed). Values that already decrypt
    are left as they are, so running it twice does no harm."""
    from django.db import migrations

    def _rewrite(schema_editor, convert) -> None:
        with schema_editor.connection.cursor() as cur:
            for table, column in columns:
                aad = f"{table}.{column}"
                cur.execute(f'SELECT id, "{column}" FROM "{table}" WHERE "{column}" <> %s', [""])  # noqa: S608
                updates = [(new, pk) for pk, value in cur.fetchall() if (new := convert(value, aad)) is not None]
                if updates:
                    cur.executemany(f'UPDATE "{table}" SET "{column}" = %s WHERE id = %s', updates)  # noqa: S608

    def _decrypts(value: str, aad: str) -> bool:
        try:
            crypto.decrypt_text(value, aad=aad)
        except (crypto.DecryptionError, ValueError):
            return False
        return True

    def forward(apps, schema_editor):
        _rewrite(schema_editor, lambda v, aad: None if _decrypts(v, aad) else crypto.encrypt_text(v, aad=aad))

    def backward(apps, schema_editor):
        _rewrite(schema_editor, lambda v, aad: crypto.decrypt_text(v, aad=aad) if _decrypts(v, aad) else None)

    return migrations.RunPython(forward, backward)
