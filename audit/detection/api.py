"""The DPO's alert API (JSON), mounted at /dpo/alerts/. Thin: validation here, work in services/selectors.

Only the DPO role may use it (the role check reads ``access.gate.role_of``: the view layer sits above both
apps; audit's services and rules do not import access).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from access.gate import role_of
from access.policy import Role
from audit.detection import selectors, services
from audit.detection.model import MODEL_HIT
from audit.detection.models import Alert
from audit.detection.rules import RULES_BY_CODE
from audit.services import event_record


class IsDPO(BasePermission):
    message = "Only the data protection officer may read and review alerts."

    def has_permission(self, request, view) -> bool:
        role = role_of(request.user)
        if role == Role.DPO:
            return True
        # Refusals are traced like every other denied access (the alerts name patients).
        event_record(
            actor=request.user if request.user.is_authenticated else None,
            actor_role=role.value if role else "",
            action="alert",
            outcome="denied",
            basis="deny:role",
            reason="alerts are for the DPO only",
            resource_type="alert",
            resource_id=str(view.kwargs.get("pk", "")),
        )
        return False


class AlertSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    reviewer_username = serializers.CharField(source="reviewer.username", read_only=True, default=None)
    level = serializers.SerializerMethodField()
    model_version = serializers.IntegerField(source="model.version", read_only=True, default=None)

    class Meta:
        model = Alert
        fields = [
            "id", "day", "user_id", "username", "patient_id", "level", "score", "severity", "rules", "hits",
            "reason_fr", "reason_en", "event_ids", "patient_ids", "n_events", "status", "comment",
            "reviewer_username", "reviewed_at", "notified_at", "created_at", "updated_at", "model_version",
            "model_probability",
        ]

    def get_level(self, alert: Alert) -> str:
        return "patient" if alert.patient_id is not None else "user"


class FilterSerializer(serializers.Serializer):
    status = serializers.MultipleChoiceField(choices=Alert.Status.choices, required=False)
    rule = serializers.ChoiceField(choices=sorted([*RULES_BY_CODE, MODEL_HIT["rule"]]), required=False)
    severity = serializers.ChoiceField(choices=Alert.Severity.choices, required=False)
    user = serializers.IntegerField(required=False, min_value=1)
    patient = serializers.IntegerField(required=False, min_value=1)
    day_from = serializers.DateField(required=False)
    day_to = serializers.DateField(required=False)
    min_score = serializers.IntegerField(required=False, min_value=0)


class RangeSerializer(serializers.Serializer):
    day_from = serializers.DateField(required=False)
    day_to = serializers.DateField(required=False)


class ReviewSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Alert.Status.choices)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def _query(request) -> dict:
    data = {k: v for k, v in request.query_params.items() if v != ""}
    if "status" in request.query_params:
        data["status"] = [s for v in request.query_params.getlist("status") for s in v.split(",") if s]
    return data


def _record_read(request, details: dict) -> None:
    """Alerts name users and patients (by id): the DPO's reads are traced like the web dashboard's."""
    event_record(actor=request.user, actor_role="dpo", action="view", outcome="allowed",
                 resource_type="detection_alert", basis="role", details=details)


class DetectionAPIView(APIView):
    """JSON only: the DPO reads alerts on the French queue (/dpo/queue/), never on DRF's English developer page.

    A browser asking for a page (Accept prefers text/html, no ``?format=``) is sent to the queue's page for
    the same thing (``browser_page``), which checks the DPO role itself; API clients get JSON as before."""

    renderer_classes = [JSONRenderer]
    browser_page: str | None = None

    def dispatch(self, request, *args, **kwargs):
        if (self.browser_page and request.method == "GET" and "format" not in request.GET
                and request.get_preferred_type(["application/json", "text/html"]) == "text/html"):
            target = reverse(self.browser_page, kwargs={"alert_id": kwargs["pk"]} if "pk" in kwargs else None)
            return HttpResponseRedirect(target)
        return super().dispatch(request, *args, **kwargs)


class AlertListView(DetectionAPIView):
    """GET: alerts, filtered by ``status`` (repeatable or comma-separated), ``rule``, ``severity``, ``user``,
    ``patient``, ``day_from``, ``day_to``, ``min_score``; paginated (``page``, ``page_size``)."""

    permission_classes = [IsAuthenticated, IsDPO]
    browser_page = "web:dpo_alerts"

    def get(self, request):
        f = FilterSerializer(data=_query(request))
        f.is_valid(raise_exception=True)
        v = f.validated_data
        qs = selectors.alert_list(
            status=sorted(v["status"]) if v.get("status") else None, rule=v.get("rule"),
            severity=v.get("severity"), user_id=v.get("user"), patient_id=v.get("patient"),
            day_from=v.get("day_from"), day_to=v.get("day_to"), min_score=v.get("min_score"),
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        _record_read(request, {"filters": {k: sorted(x) if isinstance(x, set) else str(x) for k, x in v.items()},
                               "channel": "api"})
        return paginator.get_paginated_response(AlertSerializer(page, many=True).data)


class AlertDetailView(DetectionAPIView):
    permission_classes = [IsAuthenticated, IsDPO]
    browser_page = "web:dpo_alert_detail"

    def get(self, request, pk: int):
        try:
            alert = selectors.alert_get(alert_id=pk)
        except Alert.DoesNotExist as exc:
            raise Http404 from exc
        _record_read(request, {"alert_id": alert.pk, "patient_id": alert.patient_id, "channel": "api"})
        return Response(AlertSerializer(alert).data)


class AlertReviewView(DetectionAPIView):
    """POST ``{"status": "in_review" | "justified" | "violation" | "new", "comment": "..."}``."""

    permission_classes = [IsAuthenticated, IsDPO]

    def post(self, request, pk: int):
        s = ReviewSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            alert = services.alert_review(alert_id=pk, actor=request.user, status=s.validated_data["status"],
                                          comment=s.validated_data["comment"])
        except Alert.DoesNotExist as exc:
            raise Http404 from exc
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        return Response(AlertSerializer(alert).data, status=status.HTTP_200_OK)


class DashboardView(DetectionAPIView):
    """GET: alerts by status, by rule, per day; the share of explained accesses; the detector's watermark."""

    permission_classes = [IsAuthenticated, IsDPO]
    browser_page = "web:dpo_dashboard"

    def get(self, request):
        r = RangeSerializer(data=_query(request))
        r.is_valid(raise_exception=True)
        return Response(selectors.dashboard(day_from=r.validated_data.get("day_from"),
                                            day_to=r.validated_data.get("day_to")))


class RulesView(DetectionAPIView):
    """GET: the rules, their labels and rationale (what the DPO reads next to an alert)."""

    permission_classes = [IsAuthenticated, IsDPO]

    def get(self, request):
        return Response([{"rule": r.code, "level": r.level, "label_fr": r.label_fr, "label_en": r.label_en,
                          "rationale": r.rationale} for r in RULES_BY_CODE.values()] + [MODEL_HIT])
