"""``manage.py rights``: the patient's rights register from the command line (DPO or DIM physician).

Rectification itself is done by the people the gate allows (reception for identity, the care team for clinical
items) through ``dpi.compliance.services.rights_rectify_identity`` / ``rights_amend_clinical`` (the UI calls them).
"""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dpi.compliance import selectors, services
from dpi.compliance.models import RightsRequest
from patients.models import Patient


def _user(username: str):
    try:
        return get_user_model()._default_manager.get_by_natural_key(username)
    except get_user_model().DoesNotExist as exc:
        raise CommandError(f"no account {username!r}") from exc


class Command(BaseCommand):
    help = "Register and answer patients' rights requests (access, rectification, restriction, erasure, objection)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        reg = sub.add_parser("register", help="record a request the day it is received")
        reg.add_argument("--ipp", required=True, help="the patient's IPP")
        reg.add_argument("--kind", required=True, choices=RightsRequest.Kind.values)
        reg.add_argument("--identity-proof", required=True, help="how the requester's identity was checked")
        reg.add_argument("--details", default="")
        sub.add_parser("list", help="the register, with due dates").add_argument("--open", action="store_true")
        for name, help_text in (("export", "access: write the encrypted copy, print its password once"),
                                ("restrict", "restriction: freeze the record"),
                                ("lift", "restriction: unfreeze and answer"),
                                ("answer-legal", "erasure/objection: refuse with the legal reason"),
                                ("refuse", "refuse with a stated reason"),
                                ("complete", "close as done"),
                                ("extend", "two more months (art. 12(3))")):
            p = sub.add_parser(name, help=help_text)
            p.add_argument("request_id", type=int)
            if name == "export":
                p.add_argument("--out", type=Path, required=True, help="directory for the ZIP")
            if name in {"lift", "refuse", "complete", "extend", "answer-legal"}:
                p.add_argument("--text", default="", help="the answer, reason or note")
        for p in sub.choices.values():
            if p.prog.split()[-1] != "list":
                p.add_argument("--by", required=True, help="username of the DPO or DIM physician")

    def handle(self, *args, action: str, **o):
        try:
            self._handle(action, o)
        except (PermissionDenied, ValidationError) as exc:
            raise CommandError(str(exc)) from exc
        except (RightsRequest.DoesNotExist, Patient.DoesNotExist) as exc:
            raise CommandError(str(exc)) from exc

    def _handle(self, action: str, o: dict) -> None:
        if action == "list":
            for r in selectors.rights_register(open_only=o["open"]):
                late = "LATE" if r["overdue"] else ""
                self.stdout.write(f"#{r['id']:<5} patient {r['patient_id']:<8} {r['kind']:<14} due {r['due_at']} "
                                  f"{r['status']:<12} {late}")
            return
        by = _user(o["by"])
        if action == "register":
            patient = Patient.objects.get(ipp=o["ipp"])
            r = services.rights_request_register(patient=patient, kind=o["kind"], identity_proof=o["identity_proof"],
                                                 details=o["details"], by=by)
            self.stdout.write(self.style.SUCCESS(f"request #{r.pk} registered, answer due by {r.due_at}"))
            return
        request = RightsRequest.objects.get(pk=o["request_id"])
        if action == "export":
            export = services.rights_access_export(request=request, by=by)
            o["out"].mkdir(parents=True, exist_ok=True)
            path = o["out"] / export.filename
            path.write_bytes(export.content)
            path.chmod(0o600)
            self.stdout.write(self.style.SUCCESS(f"written {path} (sha256 {export.sha256})"))
            self.stdout.write(f"PASSWORD (shown once, give it through another channel than the file): "
                              f"{export.password}")
        elif action == "restrict":
            services.rights_restrict(request=request, by=by)
            self.stdout.write(self.style.SUCCESS("record frozen"))
        elif action == "lift":
            services.rights_restriction_lift(request=request, by=by, answer=o["text"])
            self.stdout.write(self.style.SUCCESS("record unfrozen, request completed"))
        elif action == "answer-legal":
            r = services.rights_answer_legal_obligation(request=request, by=by, note=o["text"])
            self.stdout.write(r.answer)
        elif action == "refuse":
            services.rights_request_refuse(request=request, by=by, reason=o["text"])
            self.stdout.write(self.style.SUCCESS("refused"))
        elif action == "complete":
            services.rights_request_complete(request=request, by=by, answer=o["text"])
            self.stdout.write(self.style.SUCCESS("completed"))
        elif action == "extend":
            r = services.rights_request_extend(request=request, by=by, reason=o["text"])
            self.stdout.write(self.style.SUCCESS(f"now due by {r.due_at}"))
