"""The detector's learned model: a logistic regression over the features of ``audit.detection.features``,
trained with scikit-learn on the DPO's verdicts, stored with its version in ``detection_detectionmodel``.

Scoring (``score_pass``, inside a detector pass) is vectorised: the candidates' features come from SQL in one
batch, the probability is computed with numpy from the stored coefficients (scikit-learn is needed only to
train), and the model's points go into ``det_hits`` as one ``model`` hit per candidate in one statement:
``round(model_points * (2p - 1))``, between ``-model_points`` and ``+model_points``. No active model stored:
no ``model`` hit, the rules alone score (features are still computed and kept on the alerts, so that the first
verdicts can train the first model).

The parameters are stored as JSON numbers with a SHA-256 of their canonical form; no pickle is ever loaded.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.detection import features as feat

LABEL_STATUSES = {"justified": 0, "violation": 1}
# The learned model's hit, listed with the rules for the DPO (``GET /dpo/alerts/rules/``).
MODEL_HIT = {
    "rule": "model", "level": "patient", "label_fr": "Modèle appris des avis du DPO",
    "label_en": "Model learned from the DPO's verdicts",
    "rationale": "A logistic regression trained on the alerts the DPO closed as justified or violation "
                 "(manage.py detect_retrain) adds up to model_points when a case resembles confirmed violations, "
                 "and removes up to as many when it resembles justified ones. No model stored: no such hit.",
}
_KEYS = ("actor_id", "patient_id", "day")
_TEXT = ("baseline_fr", "baseline_en")


class NotEnoughLabels(Exception):
    """Too few closed alerts to train on (the message says how many there are and how many are needed)."""


def digest(features: list[str], params: dict[str, Any]) -> str:
    canonical = json.dumps({"features": features, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Loaded:
    pk: int
    version: int
    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability of a violation for each row of ``x`` (columns in ``self.features``)."""
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def load(row) -> Loaded | None:
    """A stored ``DetectionModel`` ready to score, or None when its digest does not match (tampered)."""
    if row is None or digest(row.features, row.params) != row.sha256:
        return None
    p = row.params
    return Loaded(row.pk, row.version, list(row.features), np.asarray(p["mean"], float),
                  np.asarray(p["scale"], float), np.asarray(p["coef"], float), float(p["intercept"]))


def active():
    """The newest active model whose digest matches, or None (rules only)."""
    from audit.detection.models import DetectionModel

    for row in DetectionModel.objects.filter(active=True).order_by("-version")[:1]:
        return load(row)
    return None


def matrix(rows: list[dict[str, float]], names: list[str]) -> np.ndarray:
    """Feature dicts to a matrix in the order of ``names`` (a missing feature counts as 0)."""
    return np.array([[float(r.get(n) or 0.0) for n in names] for r in rows], dtype=float).reshape(len(rows),
                                                                                                   len(names))


def points(p: np.ndarray, conf: dict[str, Any]) -> np.ndarray:
    return np.rint(conf["model_points"] * (2 * p - 1)).astype(int)


def score_pass(cur, params: dict[str, Any], conf: dict[str, Any]) -> Loaded | None:
    """Inside a pass, after the rules: compute the features, and with an active model add its ``model`` hits.

    Leaves ``det_feat`` (features) and ``det_mscore`` (probability per candidate, empty without a model) for
    ``record_on_alerts``.
    """
    feat.compute(cur, params)
    cur.execute("CREATE TEMP TABLE det_mscore (actor_id bigint, patient_id bigint, day date, p float8, pts int) "
                "ON COMMIT DROP")
    model = active()
    if model is None:
        return None
    cols = ", ".join(f'f."{n}"' if n in feat.FEATURES else "0" for n in model.features)
    cur.execute(f"SELECT f.actor_id, f.patient_id, f.day, {cols} FROM det_feat f")  # noqa: S608 (known names)
    rows = cur.fetchall()
    if not rows:
        return model
    keys = list(zip(*[(r[0], r[1], r[2]) for r in rows], strict=True))
    x = np.array([r[3:] for r in rows], dtype=float)
    p = model.predict(x)
    pts = points(p, conf)
    cur.execute(
        "INSERT INTO det_mscore SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::date[], %s::float8[], "
        "%s::int[])", [list(keys[0]), list(keys[1]), list(keys[2]), p.tolist(), pts.tolist()])
    cur.execute(
        """
        INSERT INTO det_hits (rule, actor_id, patient_id, day, points, detail, fr, en)
        SELECT 'model', m.actor_id, m.patient_id, m.day, m.pts,
               jsonb_build_object('version', %(version)s, 'probability', round(m.p::numeric, 3)),
               'Modèle appris (version ' || %(version)s || ') : probabilité d''un accès illégitime '
                 || replace(round(m.p::numeric, 2)::text, '.', ',') || ' au vu des avis du DPO sur des cas semblables',
               'Learned model (version ' || %(version)s || '): probability of an illegitimate access '
                 || round(m.p::numeric, 2) || ' given the DPO''s verdicts on similar cases'
        FROM det_mscore m WHERE m.pts <> 0
        """,
        {"version": model.version},
    )
    return model


def drop(cur) -> None:
    feat.drop(cur)


def record_on_alerts(cur, params: dict[str, Any], model: Loaded | None, alert_ids: list[int]) -> None:
    """On the alerts this pass created or updated: the features seen, the model and its probability, and the
    baseline sentence appended to the French and English context."""
    if not alert_ids:
        return
    cur.execute(
        f"""
        UPDATE detection_alert a
        SET features = to_jsonb(f) - ARRAY[{", ".join(f"'{k}'" for k in _KEYS + _TEXT)}],
            model_id = CASE WHEN m.p IS NULL THEN NULL ELSE %(model)s::bigint END,
            model_probability = m.p,
            context = jsonb_build_object(
                'fr', regexp_replace(coalesce(a.context ->> 'fr', ''), ' Habitudes \\(.*$', '') || ' ' || f.baseline_fr,
                'en', regexp_replace(coalesce(a.context ->> 'en', ''), ' Usual pattern \\(.*$', '') || ' '
                      || f.baseline_en)
        FROM det_feat f LEFT JOIN det_mscore m
          ON m.actor_id = f.actor_id AND m.patient_id = f.patient_id AND m.day = f.day
        WHERE a.id = ANY(%(ids)s::bigint[]) AND a.user_id = f.actor_id AND a.patient_id = f.patient_id
          AND a.day = f.day
        """,  # noqa: S608 (constant names)
        {"model": model.pk if model else None, "ids": alert_ids},
    )
    cur.execute(feat.USER_BASELINE, {**params, "ids": alert_ids})


# --- training -------------------------------------------------------------------------------------------------

def labelled_alerts() -> tuple[list[dict[str, float]], list[int], list[float]]:
    """The closed patient-level alerts that carry features: (features, label 1 = violation, rule points)."""
    from audit.detection.models import Alert

    rows = (Alert.objects.filter(status__in=list(LABEL_STATUSES), patient_id__isnull=False)
            .filter(features__isnull=False).exclude(features={}).values_list("features", "status"))
    xs, ys = [], []
    for f, status in rows:
        xs.append(f)
        ys.append(LABEL_STATUSES[status])
    return xs, ys, [float(f.get("rule_points") or 0) for f in xs]


def check_labels(ys: list[int], conf: dict[str, Any]) -> None:
    n, pos = len(ys), sum(ys)
    neg = n - pos
    if n < conf["model_min_labels"] or min(pos, neg) < conf["model_min_per_class"]:
        raise NotEnoughLabels(
            f"not enough DPO verdicts to train on: {n} closed alert(s) with features ({pos} violation(s), "
            f"{neg} justified); at least {conf['model_min_labels']} are needed, with at least "
            f"{conf['model_min_per_class']} of each verdict (model_min_labels, model_min_per_class). "
            "The detector keeps scoring with the rules alone (and the current model, if any).")


def fit(xs: list[dict[str, float]], ys: list[int], names: list[str] | None = None) -> dict[str, Any]:
    """Train a logistic regression (scikit-learn) on standardised features: its parameters as plain numbers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    names = list(names or feat.FEATURES)
    x = matrix(xs, names)
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    clf = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000)
    clf.fit((x - scaler.mean_) / scale, np.asarray(ys))
    return {"features": names, "params": {"mean": scaler.mean_.tolist(), "scale": scale.tolist(),
                                          "coef": clf.coef_[0].tolist(), "intercept": float(clf.intercept_[0])}}


def _as_loaded(trained: dict[str, Any]) -> Loaded:
    p = trained["params"]
    return Loaded(0, 0, trained["features"], np.asarray(p["mean"]), np.asarray(p["scale"]),
                  np.asarray(p["coef"]), float(p["intercept"]))


def evaluate(xs: list[dict[str, float]], ys: list[int], model: Loaded | None, conf: dict[str, Any]) -> dict:
    """How well labelled keys are sorted out, with the rules alone or with ``model`` blended in: precision and
    recall of "alert" (rule points + model points >= alert_score) against the violation label, and the average
    precision of the ranking by that score."""
    rule = np.array([float(x.get("rule_points") or 0) for x in xs])
    score = rule.copy()
    if model is not None and xs:
        score = rule + points(model.predict(matrix(xs, model.features)), conf)
    y = np.asarray(ys, dtype=int)
    alert = score >= conf["alert_score"]
    tp = int((alert & (y == 1)).sum())
    out = {"n": int(len(y)), "violations": int(y.sum()), "alerts": int(alert.sum()), "true_alerts": tp,
           "precision": round(float(tp / alert.sum()), 3) if alert.sum() else None,
           "recall": round(float(tp / y.sum()), 3) if y.sum() else None}
    if len(set(ys)) == 2:
        from sklearn.metrics import average_precision_score

        out["average_precision"] = round(float(average_precision_score(y, score)), 3)
    return out


def split(n: int, ys: list[int], *, seed: int = 0, share: float = 0.25) -> tuple[list[int], list[int]]:
    """A stratified split of ``range(n)``: (train, held-out)."""
    rng = random.Random(seed)
    train, held = [], []
    for label in (0, 1):
        idx = [i for i in range(n) if ys[i] == label]
        rng.shuffle(idx)
        k = max(1, round(len(idx) * share)) if len(idx) >= 2 else 0
        held += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(held)


def store(trained: dict[str, Any], *, training: dict, metrics: dict):
    """Save a trained model as the next version, the active one (earlier versions stay, inactive)."""
    import sklearn
    from django.db import transaction
    from django.db.models import Max

    from audit.detection.models import DetectionModel

    with transaction.atomic():
        DetectionModel.objects.select_for_update().filter(active=True).update(active=False)
        version = (DetectionModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        return DetectionModel.objects.create(
            version=version, active=True, algorithm=f"scikit-learn {sklearn.__version__} LogisticRegression",
            features=trained["features"], params=trained["params"], training=training, metrics=metrics,
            sha256=digest(trained["features"], trained["params"]))


def retrain(*, conf: dict[str, Any], extra: tuple[list[dict], list[int]] | None = None,
            description: str = "", seed: int = 0) -> tuple[Any, dict]:
    """Train on the DPO's verdicts (plus ``extra`` labelled features, e.g. the benchmark's), report the
    held-out before/after, refit on everything and store the new version. Raises ``NotEnoughLabels``."""
    xs, ys, _ = labelled_alerts()
    n_dpo = len(xs)
    if extra:
        xs, ys = xs + list(extra[0]), ys + list(extra[1])
    check_labels(ys, conf)
    train_idx, held_idx = split(len(xs), ys, seed=seed)
    current = active()
    held_x, held_y = [xs[i] for i in held_idx], [ys[i] for i in held_idx]
    candidate = _as_loaded(fit([xs[i] for i in train_idx], [ys[i] for i in train_idx]))
    metrics = {
        "held_out": {
            "rules_only": evaluate(held_x, held_y, None, conf),
            "current_model": evaluate(held_x, held_y, current, conf) if current else None,
            "new_model": evaluate(held_x, held_y, candidate, conf),
        },
        "model_points": conf["model_points"],
    }
    trained = fit(xs, ys)
    training = {"labels": len(ys), "violations": sum(ys), "justified": len(ys) - sum(ys),
                "from_dpo_verdicts": n_dpo, "from_other_sources": len(ys) - n_dpo,
                "held_out_share": 0.25, "description": description or "closed alerts (DPO verdicts)",
                "previous_version": current.version if current else None}
    row = store(trained, training=training, metrics=metrics)
    return row, metrics
