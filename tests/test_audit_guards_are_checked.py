"""A superuser's lasting changes to the trail's defences are named by ``verify_audit``: a guard trigger left
disabled or dropped, a trigger added that silently drops refusals as they are written, a rule that does the same,
row-level security that hides rows from the verification. (A trigger disabled for one statement and enabled again
leaves nothing to see: what it let through is caught by the chain, tests/test_audit_tamper_suite.py.)
"""

from __future__ import annotations

import pytest

from audit.verification import chain_verify
from tests.test_audit_support import fresh_trail, signed, sql

pytestmark = pytest.mark.django_db

DROP_REFUSALS = """
CREATE FUNCTION zz_drop_refusals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.outcome = 'denied' THEN RETURN NULL; END IF; RETURN NEW; END $$;
CREATE TRIGGER zz_drop_refusals BEFORE INSERT ON audit_accessevent FOR EACH ROW EXECUTE FUNCTION zz_drop_refusals();
"""

ATTACKS = {
    "disabled": ("ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER audit_append_only",
                 "the trigger audit_append_only on audit_auditcheckpoint is disabled"),
    "dropped": ("DROP TRIGGER audit_no_truncate ON audit_chainlink",
                "the trigger audit_no_truncate on audit_chainlink was dropped"),
    "chain-trigger-off": ("ALTER TABLE audit_accessevent DISABLE TRIGGER audit_chain",
                          "the trigger audit_chain on audit_accessevent is disabled"),
    "drops-refusals": (DROP_REFUSALS, "an unexpected trigger zz_drop_refusals (zz_drop_refusals()) is on "
                                      "audit_accessevent"),
    "rule": ("CREATE RULE zz_no_refusals AS ON INSERT TO audit_accessevent WHERE NEW.outcome = 'denied' "
             "DO INSTEAD NOTHING", "a rule zz_no_refusals rewrites statements on audit_accessevent"),
    "row-security": ("ALTER TABLE audit_accessevent ENABLE ROW LEVEL SECURITY",
                     "row-level security is enabled on audit_accessevent"),
    "verification-runs": ("ALTER TABLE audit_verificationrun DISABLE TRIGGER audit_append_only",
                          "the trigger audit_append_only on audit_verificationrun is disabled"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_lasting_change_of_the_guards_is_named(attack):
    fresh_trail()
    signed(2, patient_id=31)
    assert not [p for p in chain_verify(alert=False).problems if p["kind"].startswith("guard")]
    statement, says = ATTACKS[attack]
    sql(statement)
    run = chain_verify(alert=False)
    assert not run.ok
    assert any(says in p["reason"] for p in run.problems), run.problems
