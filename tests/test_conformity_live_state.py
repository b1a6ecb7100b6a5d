"""The DPO's live conformity state: an instance in a known bad state shows red lines, which turn green once
fixed; the signed PDF verifies with a command, and any change to it does not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from access import services as access_services
from access.policy import Role
from dpi.compliance import live_state, signed_reports
from dpi.compliance.models import RightsRequest
from tests.helpers import audit_events
from tests.personas import make_user
from tests.test_audit_support import stored_run
from tests.ui_support import totp_device, verified_client

pytestmark = pytest.mark.django_db


def _verification(at, ok=True):
    return stored_run(started_at=at, finished_at=at, ok=ok, events_checked=10)


def test_a_bad_instance_turns_red_then_green_once_fixed(cast):
    now = timezone.now()
    # Bad state: a DPO without a second factor, a verification five days old, an overdue rights request,
    # an account created after the review started.
    _verification(now - timedelta(days=5))
    request = RightsRequest.objects.create(
        patient=cast.patient, kind="access", received_at=now - timedelta(days=40),
        due_at=timezone.localdate() - timedelta(days=9), identity_proof="carte d'identité",
        registered_by=cast.reception)
    totp_device(cast.reception)  # someone else enrolled: the DPO line stays red on its own
    access_services.review_campaign_start(actor=cast.dpo, name="Revue", due_at=now + timedelta(days=30))
    make_user("late.comer", Role.NURSE, [cast.cardio])

    bad = live_state.live_state().by_code()
    assert bad["second_factor:dpo"].status == live_state.RED
    assert cast.dpo.username in bad["second_factor:dpo"].details
    assert bad["audit:verification"].status == live_state.RED
    assert bad["rights:open"].status == live_state.RED
    assert bad["review:coverage"].status == live_state.RED
    assert any("late.comer" in d for d in bad["review:coverage"].details)

    # Fixed: the DPO enrols, the chain is verified today, the request answered, a new review covers everyone.
    totp_device(cast.dpo)
    _verification(timezone.now())
    request.status, request.answered_at = RightsRequest.Status.COMPLETED, timezone.now()
    request.save(update_fields=["status", "answered_at"])
    access_services.review_campaign_start(actor=cast.dpo, name="Revue bis", due_at=now + timedelta(days=30))

    good = live_state.live_state().by_code()
    for code in ("second_factor:dpo", "audit:verification", "rights:open", "review:coverage"):
        assert good[code].status == live_state.GREEN, (code, good[code])


def test_a_broken_chain_is_red_even_when_recent(cast):
    _verification(timezone.now(), ok=False)
    assert live_state.live_state().by_code()["audit:verification"].status == live_state.RED


def test_settings_below_recommended_values_are_flagged(cast, settings):
    settings.DPI_SESSION_IDLE_SECONDS = 4 * 3600
    state = live_state.live_state().by_code()
    assert state["setting:DPI_SESSION_IDLE_SECONDS"].status == live_state.RED
    settings.DPI_SESSION_IDLE_SECONDS = 15 * 60
    assert live_state.live_state().by_code()["setting:DPI_SESSION_IDLE_SECONDS"].status == live_state.GREEN


def test_the_page_shows_every_line_and_is_audited(cast):
    client = verified_client(cast.dpo)
    response = client.get("/dpo/conformity/")
    assert response.status_code == 200
    html = response.content.decode()
    for code in ("second_factor:dpo", "audit:verification", "audit:witness", "backup:restore_test", "keys:data",
                 "rights:open"):
        assert f'data-check="{code}"' in html
    assert audit_events(resource_type="conformity_live_state", action="view", actor_id=cast.dpo.pk)
    assert verified_client(cast.physician).get("/dpo/conformity/").status_code == 403


def test_the_signed_pdf_verifies_and_a_changed_byte_does_not(cast, tmp_path, capsys):
    response = verified_client(cast.dpo).get("/dpo/conformity.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    data = response.content
    assert data.startswith(b"%PDF")
    assert audit_events(resource_type="conformity_live_state", action="export", actor_id=cast.dpo.pk)
    assert signed_reports.verify(data).ok
    path = tmp_path / "etat.pdf"
    path.write_bytes(data)
    call_command("verify_signed_report", str(path))
    assert "signature valid" in capsys.readouterr().out
    tampered = bytearray(data)
    tampered[200] ^= 0x01
    path.write_bytes(bytes(tampered))
    assert not signed_reports.verify(bytes(tampered)).ok
    with pytest.raises(SystemExit) as exc:
        call_command("verify_signed_report", str(path))
    assert exc.value.code == 1
    assert not signed_reports.verify(data.split(signed_reports.MARKER)[0]).ok  # signature stripped


def test_the_witness_line_follows_the_checkpoints_copied_outside_the_database(cast, settings, tmp_path):
    from audit.services import checkpoint_sign

    settings.DPI_AUDIT_WITNESS_FILE = str(tmp_path / "witness.jsonl")
    before = live_state.live_state().by_code()
    assert before["audit:witness"].status == live_state.RED  # no file yet
    checkpoint_sign()
    after = live_state.live_state().by_code()
    assert after["audit:witness"].status == live_state.GREEN
    assert after["audit:checkpoint"].status == live_state.GREEN
