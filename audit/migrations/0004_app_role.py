"""The application's database role for the audit trail: INSERT and SELECT only.

Where the migrating user may create roles, this creates ``dpi_app_audit`` (NOLOGIN, a group role) and grants it:

- ``SELECT, INSERT`` on ``audit_accessevent`` (and its identity sequence): no UPDATE, DELETE or TRUNCATE;
- ``SELECT`` on the chain tables (links are written by SECURITY DEFINER functions owned by the migrating user);
- ``SELECT, INSERT`` on checkpoints and verification runs;
- ``EXECUTE`` on ``audit_chain_seal``, ``audit_ensure_partitions``, ``audit_drop_partitions_before`` and
  ``audit_purge_links_before`` (retention removes whole months through them, never row by row).

In production the tables are owned by a migration role and the web/worker login role is a member:
``GRANT dpi_app_audit TO dpi_app;`` (see docs/audit.md). Where the database refuses (no CREATEROLE, a managed
service), the migration only prints a notice: a DBA runs the same statements.
"""

from django.db import migrations

CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dpi_app_audit') THEN
        CREATE ROLE dpi_app_audit NOLOGIN;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'role dpi_app_audit not created (%); see docs/audit.md', SQLERRM;
    WHEN duplicate_object OR unique_violation THEN
        NULL;  -- created at the same moment by another database's migration (roles are cluster-wide)
END $$;
"""

GRANT = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dpi_app_audit') THEN
        RETURN;
    END IF;
    REVOKE ALL ON audit_accessevent, audit_chainlink, audit_chainpending FROM dpi_app_audit;
    GRANT SELECT, INSERT ON audit_accessevent TO dpi_app_audit;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO dpi_app_audit', pg_get_serial_sequence('audit_accessevent', 'id'));
    GRANT SELECT ON audit_chainlink, audit_chainpending TO dpi_app_audit;
    GRANT SELECT, INSERT ON audit_auditcheckpoint, audit_verificationrun TO dpi_app_audit;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s, %s TO dpi_app_audit',
                   pg_get_serial_sequence('audit_auditcheckpoint', 'id'),
                   pg_get_serial_sequence('audit_verificationrun', 'id'));
    GRANT EXECUTE ON FUNCTION audit_chain_seal(integer), audit_ensure_partitions(date, integer),
        audit_drop_partitions_before(timestamptz), audit_purge_links_before(bigint) TO dpi_app_audit;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'grants to dpi_app_audit not made (%); see docs/audit.md', SQLERRM;
END $$;
"""

REVOKE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dpi_app_audit') THEN
        REVOKE ALL ON audit_accessevent, audit_chainlink, audit_chainpending, audit_auditcheckpoint,
            audit_verificationrun FROM dpi_app_audit;
        REVOKE ALL ON FUNCTION audit_chain_seal(integer), audit_ensure_partitions(date, integer),
            audit_drop_partitions_before(timestamptz), audit_purge_links_before(bigint) FROM dpi_app_audit;
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_chain")]

    operations = [migrations.RunSQL(CREATE_ROLE + GRANT, REVOKE)]
