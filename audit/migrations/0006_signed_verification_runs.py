"""Verification runs are evidence too: signed, numbered, chained to the previous run, and append-only.

Before this, a database superuser could turn a failed run into "intact" (or delete it), and the DPO dashboard,
the retention gate and the signed report believed the row. Each run now carries its number, the digest of the
previous run and an Ed25519 signature (``audit.signing.run_message``), and is written to the witness file. The
application may not UPDATE or DELETE a run (a test flush still empties the table: no TRUNCATE guard, the role
has no TRUNCATE privilege). See docs/audit.md, section 4.
"""

from django.db import migrations, models

GUARD = """
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_verificationrun
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
"""
REVERSE = "DROP TRIGGER IF EXISTS audit_append_only ON audit_verificationrun;"


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_witnessed_checkpoint_chain")]

    operations = [
        migrations.AddField("verificationrun", "number", models.BigIntegerField(
            null=True, unique=True, help_text="runs are numbered without gap (signed)")),
        migrations.AddField("verificationrun", "prev_digest", models.BinaryField(null=True, max_length=32)),
        migrations.AddField("verificationrun", "key_version", models.PositiveIntegerField(null=True)),
        migrations.AddField("verificationrun", "signature", models.BinaryField(null=True, max_length=64)),
        migrations.RunSQL(GUARD, REVERSE),
    ]
