"""``manage.py detect_retrain``: train a new version of the detector's model on the DPO's verdicts (issue #20)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from audit.detection import model as learned
from audit.detection.config import thresholds


def _fmt(m: dict | None) -> str:
    if not m:
        return "n/a"
    ap = m.get("average_precision")
    return (f"alerts {m['alerts']} of {m['n']} labelled ({m['violations']} violations): "
            f"precision {m['precision'] if m['precision'] is not None else 'n/a'}, "
            f"recall {m['recall'] if m['recall'] is not None else 'n/a'}"
            + (f", average precision of the ranking {ap}" if ap is not None else ""))


class Command(BaseCommand):
    help = ("Train the detector's model on alerts closed as justified or violation (plus optional labelled "
            "features), print the before/after on a held-out quarter, and store it as the next version.")

    def add_arguments(self, parser):
        parser.add_argument("--labels", help="a JSON file of extra labelled cases: [{\"features\": {...}, "
                                             "\"label\": 0 or 1}, ...] (e.g. the benchmark's tuning seeds)")
        parser.add_argument("--description", default="", help="what the training set is, stored with the model")
        parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split")

    def handle(self, *args, labels: str | None, description: str, seed: int, **options):
        extra = None
        if labels:
            try:
                with open(labels) as f:
                    rows = json.load(f)
                extra = ([r["features"] for r in rows], [int(r["label"]) for r in rows])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CommandError(f"cannot read labelled cases from {labels}: {exc}") from exc
        try:
            row, metrics = learned.retrain(conf=thresholds(), extra=extra, description=description, seed=seed)
        except learned.NotEnoughLabels as exc:
            raise CommandError(str(exc)) from exc
        held = metrics["held_out"]
        self.stdout.write(f"held-out quarter, rules alone:  {_fmt(held['rules_only'])}")
        if held["current_model"]:
            self.stdout.write(f"held-out quarter, current model: {_fmt(held['current_model'])}")
        self.stdout.write(f"held-out quarter, new model:    {_fmt(held['new_model'])}")
        t = row.training
        self.stdout.write(f"stored model version {row.version} ({row.algorithm}), trained on {t['labels']} labels "
                          f"({t['violations']} violations, {t['justified']} justified; {t['from_dpo_verdicts']} "
                          f"DPO verdicts), sha256 {row.sha256[:16]}...; the next detector pass scores with it")
