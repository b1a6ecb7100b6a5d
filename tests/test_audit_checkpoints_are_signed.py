"""Celery beat signs the chain head (Ed25519, key from the keyring) at DPI_AUDIT_CHECKPOINT_SECONDS."""

import pytest
from django.conf import settings

from audit.models import AuditCheckpoint
from audit.services import chain_head, checkpoint_sign
from audit.signing import checkpoint_digest, checkpoint_message, checkpoint_signature_valid, public_key
from audit.tasks import checkpoint_sign as checkpoint_task
from dpi.schedule import BEAT_SCHEDULE
from tests.test_audit_support import chain_now, record

pytestmark = pytest.mark.django_db


def test_a_checkpoint_signs_the_head_and_verifies_with_the_public_key():
    record(3)
    chain_now()
    cp = checkpoint_sign()
    assert (cp.seq, bytes(cp.head_hash)) == chain_head()
    assert cp.key_version >= 1 and len(bytes(cp.signature)) == 64
    public_key(cp.key_version).verify(bytes(cp.signature), checkpoint_message(cp))  # raises if invalid
    assert checkpoint_signature_valid(AuditCheckpoint.objects.get(pk=cp.pk))  # as stored


def test_a_checkpoint_is_signed_every_period_even_when_nothing_new_arrived():
    """Its age is what proves signing did not stop: verify_audit fails when the newest is older than 2 periods."""
    record()
    chain_now()
    first = checkpoint_sign()
    again = checkpoint_sign()
    assert again.number == first.number + 1 and again.seq == first.seq
    assert bytes(again.prev_digest) == checkpoint_digest(first)


def test_the_beat_task_signs_and_is_scheduled_at_the_configured_interval():
    record()
    chain_now()
    pk = checkpoint_task.apply().get()
    assert AuditCheckpoint.objects.filter(pk=pk, kind="periodic").exists()
    entry = next(e for e in BEAT_SCHEDULE.values() if e["task"] == "audit.tasks.checkpoint_sign")
    assert entry["schedule"] == settings.DPI_AUDIT_CHECKPOINT_SECONDS
    tasks = {e["task"] for e in BEAT_SCHEDULE.values()}
    assert {"audit.tasks.partitions_ensure", "audit.tasks.chain_seal", "audit.tasks.chain_verify"} <= tasks
