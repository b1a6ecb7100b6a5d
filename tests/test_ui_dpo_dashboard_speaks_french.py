"""The DPO dashboard says in French what the audit and retention areas store in English (the verification's
summary, the retention profile), and draws every alert rule's label whole."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone, translation

from audit.detection.models import Alert
from audit.models import VerificationRun
from dpi.web import charts, dpo
from tests.detection_support import day_ago
from tests.test_audit_support import stored_run
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def _run(**fields) -> VerificationRun:
    now = timezone.now()
    return stored_run(started_at=now, finished_at=now, ok=True, events_checked=2244,
                                          checkpoints_checked=1, first_seq=1, last_seq=2244,
                                          message="2244 events and 1 checkpoints verified (links 1 to 2244)",
                                          **fields)


def test_an_intact_verification_is_summed_up_in_french(cast):
    _run(witness_checked=3)
    html = verified_client(cast.dpo).get("/dpo/").content.decode()
    panel = html.split('id="audit-chain"')[1].split("</div>")[0]
    assert ("2244 événements et 1 point de contrôle vérifiés (maillons 1 à 2244), "
            "3 entrées du fichier témoin rapprochées") in panel
    assert "events and" not in panel and "checkpoints verified" not in panel


def test_the_summary_stays_english_in_english():
    run = VerificationRun(events_checked=1, checkpoints_checked=2, first_seq=None, witness_checked=0)
    with translation.override("en"):
        assert dpo.verification_summary(run) == "1 event and 2 checkpoints verified"


def test_the_retention_profile_is_named_in_french(cast, settings):
    settings.DPI_RETENTION_PROFILE = "establishment"
    html = verified_client(cast.dpo).get("/dpo/").content.decode()
    assert "Établissement de santé (R1112-7 CSP)" in html
    assert "Health establishment" not in html


def test_the_retention_profile_keeps_its_english_name_for_logs_and_commands():
    from retention.policies import ESTABLISHMENT

    with translation.override("fr"):
        assert str(ESTABLISHMENT.label) == "Health establishment (R1112-7 CSP)"


def _svg_labels(html: str) -> list[str]:
    """The rule labels as the horizontal bar chart writes them (one <text> of <tspan> lines per bar)."""
    texts = re.findall(r'<text text-anchor="end"[^>]*>(.*?)</text>', html, flags=re.S)
    return [" ".join(re.findall(r"<tspan[^>]*>(.*?)</tspan>", t)) for t in texts]


def test_the_alerts_by_rule_chart_writes_each_label_whole(cast):
    Alert.objects.create(user=cast.nurse, patient_id=None, day=day_ago(1), score=60, severity="medium",
                         rules=["denied_clinical"], reason_fr="a", reason_en="a")
    html = verified_client(cast.dpo).get("/dpo/").content.decode()
    assert "Tentatives refusées sur des données cliniques" in _svg_labels(html)


def test_long_labels_wrap_on_lines_that_fit_left_of_the_bars():
    label = "Un libellé de règle bien plus long que la place laissée à gauche des barres du graphique"
    chart = charts.hbar_chart("t", [label, "court"], {"alertes": [3, 1]})
    long_row, short_row = chart.rows_geometry
    assert " ".join(text for _y, text in long_row.lines) == label
    assert len(long_row.lines) > 1 and all(len(t) <= charts.HBAR_LABEL_CHARS for _y, t in long_row.lines)
    assert [t for _y, t in short_row.lines] == ["court"]
    # rows do not overlap, and the drawing is tall enough for all of them
    assert short_row.lines[0][0] > long_row.lines[-1][0]
    assert chart.height >= short_row.y + charts.HBAR_BAR_HEIGHT
