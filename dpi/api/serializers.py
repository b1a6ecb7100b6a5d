"""Shapes of the REST API. Input serializers check types and sizes; the services then validate the rules
(``full_clean``), and a rule broken there is also a 400 naming the field."""

from __future__ import annotations

from datetime import UTC

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit import reports as audit_reports
from audit.models import AccessEvent
from dpi.clinical_reference import is_loinc
from dpi.converters import MAX_ID
from dpi.core import dates
from dpi.models import DOCUMENT_TYPE_CODES, Document, Observation
from patients.models import Encounter, Patient


class ApiDateTimeField(serializers.DateTimeField):
    """ISO 8601. Written in UTC (``Z``); read with its offset (a naive time is Europe/Paris, the hospital's).

    Years 1900 to 2100 only (``dpi.core.dates``, the bounds of every channel).
    """

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if error := dates.year_error(parsed):
            raise serializers.ValidationError(error)
        return parsed

    def to_representation(self, value):
        if value is None:
            return None
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


# --- patients ---------------------------------------------------------------------------------------------
class PatientSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    ipp = serializers.CharField(read_only=True)
    ins = serializers.SerializerMethodField(help_text="INS (NIR or NIA + key); only for a qualified identity (QUAL)")
    identity_status = serializers.CharField(read_only=True)
    birth_name = serializers.CharField(read_only=True)
    used_name = serializers.CharField(read_only=True)
    first_name = serializers.CharField(read_only=True)
    first_names = serializers.CharField(read_only=True)
    sex = serializers.CharField(read_only=True)
    birth_date = serializers.DateField(read_only=True)
    birthplace_insee = serializers.CharField(read_only=True)
    birthplace_label = serializers.SerializerMethodField(help_text="name of the commune or country of birth")
    identity_attribute = serializers.CharField(read_only=True, help_text="RNIV attribute: DOUT, FICT, HOMA or empty")
    validation_mode = serializers.CharField(read_only=True, help_text="identity document checked (CN, eCN, PA, CS)")
    validation_date = serializers.DateField(read_only=True, allow_null=True)
    insi_date = ApiDateTimeField(read_only=True, allow_null=True, help_text="date of the INSi answer used")
    merged_into = serializers.SerializerMethodField(help_text="IPP of the file this one was merged into, if any")
    address = serializers.CharField(read_only=True)
    postal_code = serializers.CharField(read_only=True)
    city = serializers.CharField(read_only=True)
    phone = serializers.CharField(read_only=True)
    email = serializers.CharField(read_only=True)
    date_of_death = serializers.DateField(read_only=True, allow_null=True)
    confidentiality = serializers.CharField(read_only=True)
    restriction_reason = serializers.CharField(read_only=True)
    frozen = serializers.BooleanField(read_only=True)
    updated_at = ApiDateTimeField(read_only=True)

    def get_birthplace_label(self, obj: Patient) -> str:
        from patients import places

        return places.label(obj.birthplace_insee)

    def get_merged_into(self, obj: Patient) -> str | None:
        from patients.services import merged_into

        kept = merged_into(obj) if obj.is_merged else None
        return kept.ipp if kept else None

    def get_ins(self, obj: Patient) -> str | None:
        # Only a qualified identity may carry and send the INS (RNIV; Ségur INS/va1.53).
        return obj.ins or None if obj.identity_status == Patient.IdentityStatus.QUALIFIED else None


class PatientWriteSerializer(serializers.Serializer):
    ipp = serializers.CharField(
        max_length=20,
        required=False,
        help_text="the identity server's permanent id; assigned here when absent",
    )
    ins = serializers.CharField(max_length=32, required=False, allow_blank=True, help_text="spaces allowed")
    identity_status = serializers.ChoiceField(
        Patient.IdentityStatus.choices, required=False,
        help_text="optional: checked against the evidence (VALI needs validation_mode and validation_date; RECUP "
                  "and QUAL come only from an INSi answer, see POST /api/patients/{id}/insi/)")
    identity_attribute = serializers.ChoiceField(Patient.Attribute.choices, required=False, allow_blank=True)
    validation_mode = serializers.ChoiceField(Patient.ValidationMode.choices, required=False, allow_blank=True,
                                              help_text="high-trust identity document checked in person")
    validation_date = serializers.DateField(required=False, allow_null=True)
    validated_by_name = serializers.CharField(max_length=150, required=False, allow_blank=True,
                                              help_text="who checked it, when not the calling user")
    birth_name = serializers.CharField(max_length=100)
    used_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=100)
    first_names = serializers.CharField(max_length=300, required=False, allow_blank=True)
    sex = serializers.ChoiceField(Patient.Sex.choices)
    birth_date = serializers.DateField()
    birthplace_insee = serializers.CharField(max_length=5, required=False, allow_blank=True)
    address = serializers.CharField(max_length=300, required=False, allow_blank=True)
    postal_code = serializers.CharField(max_length=10, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=30, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    date_of_death = serializers.DateField(required=False, allow_null=True)
    confidentiality = serializers.ChoiceField(Patient.Confidentiality.choices, required=False)
    restriction_reason = serializers.ChoiceField(Patient.RestrictionReason.choices, required=False, allow_blank=True)


class PatientUpdateSerializer(PatientWriteSerializer):
    """Every field optional (PATCH); the IPP never changes; confidentiality is not a field of an update
    (lowering it is a separate, audited act of the DPO; access.services.patient_confidentiality_lower)."""

    ipp = None
    confidentiality = None
    restriction_reason = None
    birth_name = serializers.CharField(max_length=100, required=False)
    first_name = serializers.CharField(max_length=100, required=False)
    sex = serializers.ChoiceField(Patient.Sex.choices, required=False)
    birth_date = serializers.DateField(required=False)


class PatientCreatedSerializer(PatientSerializer):
    probable_duplicates = serializers.SerializerMethodField(help_text="files that may be the same person")

    probable_duplicates_not_shown = serializers.SerializerMethodField(
        help_text="true when a probable duplicate exists in a file you may not see (restricted): it is not named; "
                  "identity vigilance has it")

    def get_probable_duplicates(self, obj: Patient) -> list[dict]:
        return [{"id": other.pk, "ipp": other.ipp, "reason": why}
                for other, why in getattr(obj, "probable_duplicates", [])]

    def get_probable_duplicates_not_shown(self, obj: Patient) -> bool:
        return bool(getattr(obj, "probable_duplicates_not_shown", False))


class InsiAnswerSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text="found, none, several or error")
    results = serializers.IntegerField()
    patient = PatientSerializer()


class MergeSerializer(serializers.Serializer):
    merged = _id_field(help_text="the file merged into this one (it becomes an alias)")
    reason = serializers.CharField(max_length=300)


class MergeResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kept = serializers.IntegerField(source="kept_patient_id")
    merged = serializers.IntegerField(source="merged_id")
    moved = serializers.SerializerMethodField(help_text="ids of the rows moved, by model and field")
    undone_at = ApiDateTimeField(allow_null=True)

    def get_moved(self, obj) -> dict[str, list[int]]:
        return {k: v for k, v in obj.moved.items() if not k.startswith("_")}  # "_..." keys: the merge's own notes


class UnmergeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


class SplitIdentitySerializer(serializers.Serializer):
    birth_name = serializers.CharField(max_length=100)
    first_name = serializers.CharField(max_length=100)
    first_names = serializers.CharField(max_length=300, required=False, allow_blank=True)
    sex = serializers.ChoiceField(Patient.Sex.choices)
    birth_date = serializers.DateField()
    birthplace_insee = serializers.CharField(max_length=5, required=False, allow_blank=True)
    used_name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class SplitSerializer(serializers.Serializer):
    identity = SplitIdentitySerializer(help_text="the other person's identity (a new, provisional file)")
    encounters = serializers.ListField(child=_id_field(), required=False, max_length=500)
    appointments = serializers.ListField(child=_id_field(), required=False, max_length=500)
    reason = serializers.CharField(max_length=300)


class QueryParametersSerializer(serializers.Serializer):
    """Query-string filters. DRF takes an optional parameter given empty (``?family=``) for one not given at
    all, while the published schema refuses an empty value: an empty parameter is a 400 naming it, as the
    schema says, instead of a filter silently dropped."""

    def run_validation(self, data=serializers.empty):
        if hasattr(data, "get"):
            blank = {name: [_BLANK_PARAMETER] for name in self.fields
                     if name in data and str(data.get(name)).strip() == ""}
            if blank:
                raise serializers.ValidationError(blank)
        return super().run_validation(data)


_BLANK_PARAMETER = gettext_lazy("This parameter is empty: leave it out or give a value.")


class PatientSearchSerializer(QueryParametersSerializer):
    ins = serializers.CharField(max_length=32, required=False, help_text="exact INS, spaces allowed (blind index)")
    ipp = serializers.CharField(max_length=20, required=False, help_text="exact IPP")
    family = serializers.CharField(max_length=100, required=False, help_text="birth or used name, prefix")
    given = serializers.CharField(max_length=100, required=False, help_text="first given name, prefix")
    birth_date = serializers.DateField(required=False)

    def validate(self, attrs):
        if not any(attrs.get(k) for k in ("ins", "ipp", "family", "given", "birth_date")):
            raise serializers.ValidationError(_("Give at least one of ins, ipp, family, given, birth_date."))
        return attrs


class PatientFilterSerializer(QueryParametersSerializer):
    patient = _id_field(help_text="the patient's id")


# --- encounters -------------------------------------------------------------------------------------------
class EncounterSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    patient = serializers.IntegerField(source="patient_id", read_only=True)
    unit = serializers.CharField(source="unit.code", read_only=True)
    unit_name = serializers.CharField(source="unit.name", read_only=True)
    kind = serializers.CharField(read_only=True)
    start = ApiDateTimeField(read_only=True)
    end = ApiDateTimeField(read_only=True, allow_null=True)
    transferred_from = serializers.IntegerField(source="transferred_from_id", read_only=True, allow_null=True)


class EncounterAdmitSerializer(serializers.Serializer):
    patient = _id_field()
    unit = serializers.SlugField(max_length=32, help_text="care unit code")
    kind = serializers.ChoiceField(Encounter.Kind.choices, required=False)
    start = ApiDateTimeField(required=False, help_text="default: now")


class EncounterTransferSerializer(serializers.Serializer):
    unit = serializers.SlugField(max_length=32, help_text="code of the receiving care unit")
    at = ApiDateTimeField(required=False, help_text="default: now")


class EncounterDischargeSerializer(serializers.Serializer):
    end = ApiDateTimeField(required=False, help_text="default: now")


# --- observations -----------------------------------------------------------------------------------------
def _decimal(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=3, **kwargs)


def _loinc(value: str) -> str:
    # FHIR sends this code with the LOINC system: it must be one (digits, a dash, the mod 10 check digit).
    if value and not is_loinc(value):
        raise serializers.ValidationError(_("Not a LOINC code: digits, a dash and the check digit (e.g. 2345-7)."))
    return value


def _loinc_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=16, required=False, allow_blank=True, validators=[_loinc],
                                 help_text="LOINC code with its check digit, e.g. 2345-7", **kwargs)


class ObservationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    patient = serializers.IntegerField(source="patient_id", read_only=True)
    encounter = serializers.IntegerField(source="encounter_id", read_only=True, allow_null=True)
    category = serializers.CharField(source="obs_category", read_only=True)
    loinc = serializers.CharField(read_only=True)
    label = serializers.CharField(read_only=True)
    value = _decimal(read_only=True, allow_null=True)
    value_text = serializers.CharField(read_only=True)
    unit = serializers.CharField(read_only=True)
    reference_low = _decimal(read_only=True, allow_null=True)
    reference_high = _decimal(read_only=True, allow_null=True)
    interpretation = serializers.CharField(source="abnormal", read_only=True, help_text="H, L or empty")
    effective_at = ApiDateTimeField(read_only=True)
    author = serializers.CharField(source="author.username", read_only=True)
    version = serializers.IntegerField(read_only=True)
    created_at = ApiDateTimeField(read_only=True)


class ObservationCreateSerializer(serializers.Serializer):
    patient = _id_field()
    encounter = _id_field(required=False, allow_null=True)
    category = serializers.ChoiceField(Observation.Category.choices, required=False)
    loinc = _loinc_field()
    label = serializers.CharField(max_length=200)
    value = _decimal(required=False, allow_null=True)
    value_text = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    unit = serializers.CharField(max_length=32, required=False, allow_blank=True)
    reference_low = _decimal(required=False, allow_null=True)
    reference_high = _decimal(required=False, allow_null=True)
    effective_at = ApiDateTimeField()

    def validate(self, attrs):
        if attrs.get("value") is None and not attrs.get("value_text"):
            raise serializers.ValidationError({"value": [_("Give a value or a value_text.")]})
        return attrs


class ObservationAmendSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="why the result is corrected (kept with the old value)")
    label = serializers.CharField(max_length=200, required=False)
    loinc = _loinc_field()
    value = _decimal(required=False, allow_null=True)
    value_text = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    unit = serializers.CharField(max_length=32, required=False, allow_blank=True)
    reference_low = _decimal(required=False, allow_null=True)
    reference_high = _decimal(required=False, allow_null=True)
    effective_at = ApiDateTimeField(required=False)


# --- documents --------------------------------------------------------------------------------------------
class DocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    patient = serializers.IntegerField(source="patient_id", read_only=True)
    encounter = serializers.IntegerField(source="encounter_id", read_only=True, allow_null=True)
    title = serializers.CharField(read_only=True)
    type_code = serializers.CharField(read_only=True)
    media_type = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True)
    author = serializers.CharField(source="author.username", read_only=True)
    version = serializers.IntegerField(read_only=True)
    created_at = ApiDateTimeField(read_only=True)
    content_url = serializers.SerializerMethodField()

    def get_content_url(self, obj: Document) -> str:
        return f"/api/documents/{obj.pk}/content/"


class DocumentUploadSerializer(serializers.Serializer):
    patient = _id_field()
    encounter = _id_field(required=False, allow_null=True)
    title = serializers.CharField(max_length=200)
    file = serializers.FileField(allow_empty_file=False, help_text="PDF, PNG, JPEG, plain text or XML (CDA)")
    type_code = serializers.ChoiceField(
        choices=sorted(DOCUMENT_TYPE_CODES), required=False, help_text="XDS/DMP document type (LOINC)"
    )


# --- care-team memberships --------------------------------------------------------------------------------
class MembershipSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    patient = serializers.IntegerField(source="patient_id", read_only=True)
    user = serializers.CharField(source="user.username", read_only=True)
    start = ApiDateTimeField(read_only=True)
    end = ApiDateTimeField(read_only=True)
    reason = serializers.CharField(read_only=True)
    granted_by = serializers.CharField(source="granted_by.username", read_only=True, allow_null=True)
    created_at = ApiDateTimeField(read_only=True)


class MembershipCreateSerializer(serializers.Serializer):
    patient = _id_field()
    user = serializers.CharField(max_length=150, help_text="username of the professional joining the team")
    start = ApiDateTimeField(required=False, help_text="default: now")
    end = ApiDateTimeField()
    reason = serializers.CharField(max_length=300)


class MembershipEndSerializer(serializers.Serializer):
    at = ApiDateTimeField(required=False, help_text="default: now")


# --- audit events (DPO) -----------------------------------------------------------------------------------
class AuditIntegritySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="not-genuine")
    display = serializers.CharField(help_text="the access report's wording, in the user's language: NOT GENUINE: why")


class AccessEventSerializer(serializers.ModelSerializer):
    """``context["integrity_flags"]``: audit.selectors.integrity_flags of the rows serialized (issue #14)."""

    occurred_at = ApiDateTimeField(read_only=True)
    integrity = serializers.SerializerMethodField(
        help_text="null for a genuine row; set for a row the chain quarantined or the last verify_audit found "
        "inserted or altered (as the access report and /fhir/AuditEvent mark it)"
    )

    class Meta:
        model = AccessEvent
        fields = [
            "id",
            "occurred_at",
            "actor_id",
            "actor_username",
            "actor_role",
            "actor_unit",
            "patient_id",
            "category",
            "resource_type",
            "resource_id",
            "action",
            "outcome",
            "basis",
            "reason",
            "channel",
            "request_id",
            "ip",
            "user_agent",
            "details",
            "integrity",
        ]
        read_only_fields = fields

    @extend_schema_field(AuditIntegritySerializer(allow_null=True))
    def get_integrity(self, obj: AccessEvent) -> dict[str, str] | None:
        label = audit_reports.integrity_label(obj, self.context.get("integrity_flags"))
        return {"code": audit_reports.NOT_GENUINE, "display": label} if label else None


class AccessEventFilterSerializer(QueryParametersSerializer):
    patient = _id_field(required=False)
    actor = serializers.CharField(max_length=150, required=False, help_text="username")
    action = serializers.ChoiceField(AccessEvent.Action.choices, required=False)
    outcome = serializers.ChoiceField(AccessEvent.Outcome.choices, required=False)
    since = ApiDateTimeField(required=False)
    until = ApiDateTimeField(required=False)
