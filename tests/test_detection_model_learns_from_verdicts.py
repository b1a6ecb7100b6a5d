"""Issue #20: the learned model. DPO verdicts are training labels; ``detect_retrain`` stores a new version that
the next pass scores with (the alert records it); without a model the rules alone score; too few labels are
refused cleanly; the baselines by weekday / weekend and hour band are right on a tiny case."""

import math
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from access.models import StaffProfile
from access.policy import Role
from audit.detection import model as learned
from audit.detection.models import Alert, DetectionModel
from patients.services import encounter_admit
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D1, D2 = day_ago(20), day_ago(3)


def _self_access_case(cast, day, hour=10):
    """The physician opens their own file (the patient is in cardiology throughout): self_access alone, 70."""
    own = StaffProfile.objects.get(user=cast.other_physician).patient
    if own is None:
        own = make_patient()
        encounter_admit(patient=own, unit=cast.cardio, start=local(D1 - timedelta(days=1), 8))
        StaffProfile.objects.filter(user=cast.other_physician).update(patient=own)
    ev(cast.other_physician, own, at=local(day, hour))
    return own


def _labelled(cast, features: dict, status: str, n: int, start: int) -> None:
    """``n`` closed alerts carrying ``features`` (as the detector stored them), on other users and days."""
    for i in range(n):
        Alert.objects.create(user=cast.nurse, patient_id=10_000_000 + start + i, day=day_ago(40 + start + i),
                             score=int(features.get("rule_points", 50)), severity="medium", status=status,
                             features=features)


def _train_on(cast, self_access_features: dict, self_access_status: str, start: int = 0) -> DetectionModel:
    """Twelve verdicts on cases like the self-access one, twelve opposite verdicts on same-name cases."""
    other = {**{k: 0.0 for k in self_access_features}, "rule_points": 70.0, "r_same_name": 50.0, "same_name": 1.0,
             "unexplained": 1.0, "cold": 1.0, "view_only": 1.0, "medical": 1.0, "first_unexplained": 1.0}
    _labelled(cast, self_access_features, self_access_status, 12, start)
    _labelled(cast, other, "violation" if self_access_status == "justified" else "justified", 12, start + 100)
    out = StringIO()
    call_command("detect_retrain", stdout=out)
    assert "held-out quarter, rules alone" in out.getvalue() and "stored model version" in out.getvalue()
    return DetectionModel.objects.get(active=True)


def test_without_a_model_the_rules_alone_score_and_the_features_are_kept(cast):
    _self_access_case(cast, D1)
    summary = run(D1)
    assert not hits(summary, "model")
    alert = Alert.objects.get(user=cast.other_physician, day=D1)
    assert alert.score == 70 and alert.rules == ["self_access"]
    assert alert.model is None and alert.model_probability is None
    assert alert.features["rule_points"] == 70 and alert.features["r_self_access"] == 70
    assert alert.features["own_file"] == 1


@pytest.mark.parametrize(("verdict", "direction"), [("justified", -1), ("violation", 1)])
def test_a_dpo_verdict_moves_the_next_score_of_a_similar_case(cast, verdict, direction):
    _self_access_case(cast, D1)
    run(D1)
    first = Alert.objects.get(user=cast.other_physician, day=D1)
    assert first.score == 70
    model = _train_on(cast, first.features, verdict)
    _self_access_case(cast, D2)
    summary = run(D2)
    [hit] = hits(summary, "model", user=cast.other_physician, day=D2)
    assert hit["points"] * direction > 0 and hit["detail"]["version"] == model.version
    after = Alert.objects.filter(user=cast.other_physician, day=D2).first()
    if direction > 0:
        assert after.score > 70 and after.model_id == model.pk and after.model_probability > 0.5
    else:
        assert after is None or after.score < 70


def test_the_model_version_is_stored_and_recorded_on_the_alerts(cast):
    _self_access_case(cast, D1)
    run(D1)
    features = Alert.objects.get(day=D1).features
    v1 = _train_on(cast, features, "violation")
    v2 = _train_on(cast, features, "violation", start=200)
    assert (v1.version, v2.version) == (1, 2)
    v1.refresh_from_db()
    assert not v1.active and v2.active
    assert v2.algorithm.startswith("scikit-learn") and v2.features[0] == "rule_points"
    assert len(v2.params["coef"]) == len(v2.features) and v2.sha256 == learned.digest(v2.features, v2.params)
    assert v2.training["labels"] == 48 and v2.training["from_dpo_verdicts"] == 48
    assert v2.metrics["held_out"]["new_model"]["n"] > 0
    _self_access_case(cast, D2)
    run(D2)
    alert = Alert.objects.get(user=cast.other_physician, day=D2)
    assert alert.model_id == v2.pk and "model" in alert.rules


def test_a_tampered_model_is_not_used(cast):
    _self_access_case(cast, D1)
    run(D1)
    model = _train_on(cast, Alert.objects.get(day=D1).features, "violation")
    DetectionModel.objects.filter(pk=model.pk).update(params={**model.params, "intercept": 50.0})
    _self_access_case(cast, D2)
    assert not hits(run(D2), "model")
    assert Alert.objects.get(user=cast.other_physician, day=D2).score == 70


def test_retrain_with_too_few_labels_refuses_cleanly(cast):
    _labelled(cast, {"rule_points": 60.0}, "violation", 3, 0)
    with pytest.raises(CommandError, match="not enough DPO verdicts to train on: 3 closed alert"):
        call_command("detect_retrain", stdout=StringIO())
    assert not DetectionModel.objects.exists()


def test_baselines_by_weekday_and_hour_band_own_and_peers(cast):
    """The user's usual patients first opened on the same weekday (or at the weekend) in the same 4-hour band,
    and their peers' (same role and unit): only days of the same kind count."""
    day = D2
    if day.isoweekday() < 6:
        same_kind = [day - timedelta(days=7 * k) for k in (1, 2, 3)]
        other_kind = day - timedelta(days=1 if day.isoweekday() > 1 else 2)
    else:
        sat = day - timedelta(days=day.isoweekday() - 6)
        same_kind = [sat - timedelta(days=7), sat - timedelta(days=6), sat - timedelta(days=14)]
        other_kind = sat - timedelta(days=1)
    peer = make_user("dr.peer", Role.PHYSICIAN, [cast.other_unit])
    patients = [make_patient() for _ in range(6)]
    for p in patients:  # all in the unit's care: explained, only the baselines matter
        encounter_admit(patient=p, unit=cast.other_unit, start=local(day - timedelta(days=30), 8))
    # own: 2 patients first opened between 14 h and 18 h on each day of the same kind, 5 on another kind of day
    for d in same_kind:
        for p in patients[:2]:
            ev(cast.other_physician, p, at=local(d, 15))
            ev(cast.other_physician, p, at=local(d, 20))  # opened again later: counted once, in its first band
    for p in patients[:5]:
        ev(cast.other_physician, p, at=local(other_kind, 15))
    # the peer: 4 patients on each day of the same kind in the band, 1 more at 9 h (another band)
    for d in same_kind:
        for p in patients[:4]:
            ev(peer, p, at=local(d, 16))
        ev(peer, patients[5], at=local(d, 9))
    # the day: 3 patients first opened in the band, one of them the user's own file (self_access scores it)
    _self_access_case(cast, day, hour=14)
    for p in patients[:2]:
        ev(cast.other_physician, p, at=local(day, 14, 30))
    for d in sorted([*same_kind, other_kind, day]):
        run(d)
    alert = Alert.objects.get(user=cast.other_physician, day=day)
    f = alert.features
    assert f["log_band_today"] == pytest.approx(math.log(1 + 3))
    assert f["band_vs_own"] == pytest.approx(math.log((1 + 3) / (1 + 2)))
    assert f["band_vs_peers"] == pytest.approx(math.log((1 + 3) / (1 + 4)))
    assert f["has_own_baseline"] == 1 and f["has_peer_baseline"] == 1
    assert f["own_band_share"] == pytest.approx(1.0)
    weekday = ["le lundi", "le mardi", "le mercredi", "le jeudi", "le vendredi", "le week-end", "le week-end"][
        day.weekday()]
    fr = alert.context["fr"]
    assert f"d'habitude 2,0 dossier(s) {weekday} entre 14 h et 18 h (moyenne de 3 jour(s)" in fr
    assert "ses pairs (médecins de pneumologie (test)) 4,0 ; aujourd'hui 3." in fr
    assert "Consulté : " in fr  # the rest of the context is kept
    assert "Usual pattern" in alert.context["en"] and "their peers (physicians, pneumologie (test)) 4.0" in (
        alert.context["en"])


def test_an_alert_the_dpo_closes_becomes_a_training_label_with_its_features(cast):
    from audit.detection import services

    _self_access_case(cast, D1)
    run(D1)
    alert = Alert.objects.get(day=D1)
    assert learned.labelled_alerts()[0] == []  # open alerts are not labels
    services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="in_review")
    services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="violation", comment="Reconnu par l'agent.")
    xs, ys, _ = learned.labelled_alerts()
    assert ys == [1] and xs[0]["r_self_access"] == 70


def test_retrain_can_start_from_labelled_cases_of_a_file(cast, tmp_path):
    """Before the DPO has closed enough alerts, a first model from labelled cases (e.g. the benchmark's)."""
    cases = [{"features": {"rule_points": 70.0, "own_file": 1.0}, "label": 0} for _ in range(10)]
    cases += [{"features": {"rule_points": 70.0, "same_name": 1.0}, "label": 1} for _ in range(10)]
    path = tmp_path / "cases.json"
    path.write_text(__import__("json").dumps(cases))
    call_command("detect_retrain", labels=str(path), description="benchmark tuning seeds", stdout=StringIO())
    model = DetectionModel.objects.get()
    assert model.training["from_other_sources"] == 20 and model.training["from_dpo_verdicts"] == 0
    assert model.training["description"] == "benchmark tuning seeds"
    path.write_text("not json")
    with pytest.raises(CommandError, match="cannot read labelled cases"):
        call_command("detect_retrain", labels=str(path), stdout=StringIO())


def test_a_user_level_alert_compares_the_day_with_the_same_weekday(cast):
    day = D2
    earlier = day - timedelta(days=7)
    patients = [make_patient() for _ in range(3)]
    for p in patients[:2]:
        ev(cast.nurse, p, at=local(earlier, 11))
    StaffProfile.objects.filter(user=cast.nurse).update(end_date=day - timedelta(days=1))
    ev(cast.nurse, patients[2], at=local(day, 12))
    run(earlier)
    run(day)
    alert = Alert.objects.get(user=cast.nurse, day=day, patient_id=None)
    assert "after_end_date" in alert.rules
    weekday = ["le lundi", "le mardi", "le mercredi", "le jeudi", "le vendredi", "le week-end", "le week-end"][
        day.weekday()]
    assert (f"Habitudes ({weekday}, dossiers ouverts) : d'habitude 2,0 par jour, dont 2,0 entre 10 h et 14 h "
            "(moyenne de 1 jour(s) comparable(s) sur 28 jours) ; aujourd'hui 1, dont 1 entre 10 h et 14 h.") in (
        alert.context["fr"])
    assert alert.context["fr"].count("Habitudes (") == 1
