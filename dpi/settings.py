"""dpi settings: one module, read from environment variables (documented in README.md).

Defaults suit a laptop or CI (embedded PostgreSQL and Redis, a generated keyring under var/).
``DPI_PRODUCTION=1`` turns on every production safeguard and refuses to start without real secrets.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# --- typed environment helpers ---------------------------------------------------------------------------
def env_str(name: str, default: str = "") -> str:
    """A string; ``NAME_FILE`` (a path) wins over ``NAME``, so secrets can come from mounted files."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_path}: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {value}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """``postgresql://user:password@host:port/name?host=/socket/dir&sslmode=require``."""
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a postgresql:// URL (dpi runs on PostgreSQL only), got {parsed.scheme!r}"
        )
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or unquote(parsed.hostname or "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "dpi",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "OPTIONS": query,
        "CONN_MAX_AGE": env_int("DPI_DB_CONN_MAX_AGE", 60, minimum=0),
        "CONN_HEALTH_CHECKS": True,
        # Behind PgBouncer in transaction mode a server-side cursor opened outside a transaction (Django's
        # ``.iterator()``: WITH HOLD) may be fetched from another server connection: turn them off there
        # (docs/deployment.md, "PgBouncer").
        "DISABLE_SERVER_SIDE_CURSORS": env_bool("DPI_DB_DISABLE_SERVER_SIDE_CURSORS", False),
    }


# --- core -------------------------------------------------------------------------------------------------
PRODUCTION = env_bool("DPI_PRODUCTION", False)
DEBUG = env_bool("DPI_DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DPI_DEBUG cannot be on with DPI_PRODUCTION")

VAR_DIR = Path(env_str("DPI_VAR_DIR", str(BASE_DIR / "var"))).resolve()


def _dev_secret(name: str, length: int = 50) -> str:
    """A secret generated once per checkout under var/ (never in production)."""
    path = VAR_DIR / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(length))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DPI_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("DPI_SECRET_KEY (or DPI_SECRET_KEY_FILE) is required with DPI_PRODUCTION")
    SECRET_KEY = _dev_secret("django_secret_key")

ALLOWED_HOSTS = env_list("DPI_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DPI_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "dpi.web.apps.ReceptionAdminConfig",  # django.contrib.admin, with reception's site as admin.site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets for /api/docs/, served locally (no CDN)
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",  # passkeys as a second factor (access.authn.passkeys)
    "patients",
    "dpi",
    "audit",
    "audit.detection",
    "access",
    "access.authn",
    "retention",
    "dpi.api",
    "dpi.compliance",
    "dpi.hl7",
]

MIDDLEWARE = [
    "dpi.metrics.MetricsMiddleware",  # request counts and latencies by URL pattern (/metrics)
    "django.middleware.security.SecurityMiddleware",
    "access.authn.middleware.SecurityHeadersMiddleware",  # CSP with nonce, no-store, permissions policy (authn)
    # Static files (CSS, JS, admin, Swagger UI) served by the application itself under gunicorn, compose or
    # behind a proxy: compressed, hashed names, cached for a year. Before sessions: no database hit for them.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "dpi.middleware.RejectNulBytesMiddleware",  # 400 for a NUL byte in path, query or form (never a 500)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "dpi.middleware.LocaleMiddleware",  # the UI in French by default, the REST API in English (Accept-Language)
    # From here to BrowserMiddlewareEnd: what a browser needs; API and FHIR calls with a bearer token and no
    # session cookie jump over it (their user comes from the token; issue #18).
    "dpi.middleware.BrowserMiddlewareStart",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "access.authn.middleware.SessionTimeoutMiddleware",  # idle + absolute expiry, session tracking (authn)
    "access.authn.middleware.AuthenticationStepsMiddleware",  # second factor, forced password change (authn)
    "dpi.compliance.middleware.MaintenanceSessionMiddleware",  # maintenance: window-bound sessions, logbook
    "django.contrib.messages.middleware.MessageMiddleware",
    "dpi.middleware.BrowserMiddlewareEnd",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dpi.health.DatabaseOutageMiddleware",  # last: a view failing on a database outage answers 503
]

ROOT_URLCONF = "dpi.urls"
WSGI_APPLICATION = "dpi.wsgi.application"
ASGI_APPLICATION = "dpi.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "dpi.web.context_processors.ui",  # idle-lock timing and the role's navigation
            ],
        },
    },
]

# --- services: PostgreSQL and Redis (embedded when the URL is unset) ------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    from dpi import embedded

    DATABASE_URL = embedded.postgres_url()
    os.environ.setdefault("DATABASE_URL", DATABASE_URL)
REDIS_URL = env_str("REDIS_URL")
if not REDIS_URL:
    from dpi import embedded

    REDIS_URL = embedded.redis_url()
    os.environ.setdefault("REDIS_URL", REDIS_URL)

_default_db = database_from_url(DATABASE_URL)
_default_db["TEST"] = {"NAME": env_str("DPI_TEST_DATABASE_NAME") or None}
# A second connection to the same database, in autocommit: it records *denied* accesses (they must survive
# the rollback of the request that was refused) and the events of a read whose COMMIT goes out while the data
# is read (``audit.services.read_trace``; docs/audit.md). Kept open like the first (one per worker).
_audit_db = dict(_default_db)
_audit_db["TEST"] = dict(_default_db["TEST"])
DATABASES = {"default": _default_db, "audit": _audit_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _celery_broker(url: str) -> str:
    """kombu spells Redis over a Unix socket ``redis+socket://``."""
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("DPI_CACHE_PREFIX", "dpi"),
        # A Redis that stops answering (host lost, packets dropped) fails fast instead of hanging requests: the
        # API rate limit then degrades and /readyz answers 503 (docs/operations.md).
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

CELERY_BROKER_URL = _celery_broker(REDIS_URL)
CELERY_RESULT_BACKEND = _celery_broker(REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = env_bool("DPI_CELERY_EAGER", False)
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves it queued: tasks are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task taken by a worker that died (SIGKILL, host lost) is given back by Redis after this many seconds
# (kombu's default is one hour). Long runs outlast it: a redelivered copy skips on their lock (retention:
# advisory lock, backup: Redis lock, detection: watermark lock), so duplicates cost nothing.
DPI_CELERY_VISIBILITY_TIMEOUT = env_int("DPI_CELERY_VISIBILITY_TIMEOUT", 1800, minimum=2)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": DPI_CELERY_VISIBILITY_TIMEOUT,
    # Look for abandoned messages every few seconds (one small Redis scan), not every 100 s.
    "unacked_restore_interval": max(1, min(10, DPI_CELERY_VISIBILITY_TIMEOUT // 3)),
    "unacked_restore_throttle": 1,
}
# Every task is stopped after 10 minutes (soft: an exception it can clean up after; hard: the process is
# replaced) unless it declares its own limits (retention, backup, detection replay, chain verification).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("DPI_CELERY_SOFT_TIME_LIMIT", 600, minimum=10)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
# Long runs (dpi.jobs) beat every DPI_JOB_HEARTBEAT_SECONDS; a run silent for DPI_JOB_STALE_SECONDS is failed.
DPI_JOB_HEARTBEAT_SECONDS = env_int("DPI_JOB_HEARTBEAT_SECONDS", 30, minimum=1)
DPI_JOB_STALE_SECONDS = env_int("DPI_JOB_STALE_SECONDS", 180, minimum=3)
if DPI_JOB_STALE_SECONDS < 2 * DPI_JOB_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("DPI_JOB_STALE_SECONDS must be at least twice DPI_JOB_HEARTBEAT_SECONDS")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat takes a leader lease in Redis before sending anything (dpi/beat.py): a second beat is a standby, not a
# second sender. It takes over within DPI_BEAT_LEASE_SECONDS of the leader's crash (at once after a clean stop).
CELERY_BEAT_SCHEDULER = "dpi.beat:LeaderScheduler"
DPI_BEAT_LEASE_SECONDS = env_int("DPI_BEAT_LEASE_SECONDS", 30, minimum=2)
CELERY_TIMEZONE = "Europe/Paris"

# --- authentication ---------------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",  # Argon2id
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "access.passwords.CnilEntropyValidator"},
    {"NAME": "access.passwords.CommonPasswordBlocklistValidator"},
    {"NAME": "access.passwords.UserIdentityValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Refuses (PermissionDenied) any `demo.` account when DPI_PRODUCTION=1 (dpi.demo); never signs anyone in.
    "dpi.demo.DemoAccountsRefusedBackend",
    # First: refuses (PermissionDenied) a maintenance account outside its approved window; never signs anyone in.
    "dpi.compliance.backends.MaintenanceWindowBackend",
    "access.authn.backends.ThrottledModelBackend",  # ModelBackend + attempt limits (CNIL 2022-100)
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

DPI_PASSWORD_MIN_ENTROPY = env_int("DPI_PASSWORD_MIN_ENTROPY", 80, minimum=50)
DPI_LOGIN_MAX_FAILURES = env_int("DPI_LOGIN_MAX_FAILURES", 5, minimum=1, maximum=10)
DPI_LOGIN_LOCK_MINUTES = env_int("DPI_LOGIN_LOCK_MINUTES", 30, minimum=1)
if DPI_PASSWORD_MIN_ENTROPY < 80 and DPI_LOGIN_MAX_FAILURES > 10:
    raise ImproperlyConfigured("the 50-bit password rule needs attempt limits (DPI_LOGIN_MAX_FAILURES <= 10)")
DPI_ACCOUNT_INACTIVITY_DAYS = env_int("DPI_ACCOUNT_INACTIVITY_DAYS", 90, minimum=1)
DPI_RECEPTION_REQUIRES_OTP = env_bool("DPI_RECEPTION_REQUIRES_OTP", True)
DPI_OTP_ISSUER = env_str("DPI_OTP_ISSUER", "dpi")
OTP_TOTP_ISSUER = DPI_OTP_ISSUER
# Passkeys (WebAuthn) as a second factor only, never instead of the password (access.authn.passkeys).
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
OTP_WEBAUTHN_HELPER_CLASS = "access.authn.passkeys.PasskeyHelper"
OTP_WEBAUTHN_RP_NAME = DPI_OTP_ISSUER
OTP_WEBAUTHN_RP_ID_CALLABLE = "access.authn.passkeys.relying_party_id"
DPI_WEBAUTHN_RP_ID = env_str("DPI_WEBAUTHN_RP_ID", "")  # default: the host dpi is served under
DPI_WEBAUTHN_ORIGINS = env_list("DPI_WEBAUTHN_ORIGINS", "")  # default: that host's own origin
OTP_WEBAUTHN_ALLOWED_ORIGINS = DPI_WEBAUTHN_ORIGINS
# Without DPI_WEBAUTHN_ORIGINS the accepted origin is the request's own host (one of ALLOWED_HOSTS), decided per
# request by access.authn.passkeys.PasskeyHelper: django-otp-webauthn's "no origins configured" check is moot.
SILENCED_SYSTEM_CHECKS = [] if DPI_WEBAUTHN_ORIGINS else ["otp_webauthn.E030"]
# Attempt limits (access.authn.throttle): growing delay base, per-address lock, trusted reverse proxies.
DPI_LOGIN_DELAY_SECONDS = env_int("DPI_LOGIN_DELAY_SECONDS", 1, minimum=0, maximum=60)
DPI_LOGIN_ADDRESS_MAX_FAILURES = env_int("DPI_LOGIN_ADDRESS_MAX_FAILURES", 50, minimum=5, maximum=1000)
DPI_TRUSTED_PROXIES = env_list("DPI_TRUSTED_PROXIES", "")
DPI_FRESH_OTP_SECONDS = env_int("DPI_FRESH_OTP_SECONDS", 300, minimum=30, maximum=3600)
DPI_ADMIN_PASSWORD_MAX_DAYS = env_int("DPI_ADMIN_PASSWORD_MAX_DAYS", 365, minimum=30)
# OpenID Connect sign-in (Pro Santé Connect), see docs/security.md.
DPI_OIDC_ENABLED = env_bool("DPI_OIDC_ENABLED", False)
DPI_OIDC_ISSUER = env_str("DPI_OIDC_ISSUER", "").rstrip("/")
DPI_OIDC_CLIENT_ID = env_str("DPI_OIDC_CLIENT_ID", "")
DPI_OIDC_CLIENT_SECRET = env_str("DPI_OIDC_CLIENT_SECRET", "")
# Pro Santé Connect publishes its metadata at a non-standard path:
# https://auth.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration
DPI_OIDC_DISCOVERY_URL = env_str("DPI_OIDC_DISCOVERY_URL", "")
DPI_OIDC_SCOPES = env_str("DPI_OIDC_SCOPES", "openid")
DPI_OIDC_RPPS_CLAIM = env_str("DPI_OIDC_RPPS_CLAIM", "SubjectNameID")
DPI_OIDC_MFA_ACR = env_list("DPI_OIDC_MFA_ACR", "")
DPI_OIDC_ACR_VALUES = env_str("DPI_OIDC_ACR_VALUES", "")
DPI_OIDC_LABEL = env_str("DPI_OIDC_LABEL", "Pro Santé Connect")
if DPI_OIDC_ENABLED:
    if not (DPI_OIDC_ISSUER and DPI_OIDC_CLIENT_ID and DPI_OIDC_CLIENT_SECRET):
        raise ImproperlyConfigured("DPI_OIDC_ENABLED needs DPI_OIDC_ISSUER, DPI_OIDC_CLIENT_ID, DPI_OIDC_CLIENT_SECRET")
    if PRODUCTION and not DPI_OIDC_ISSUER.startswith("https://"):
        raise ImproperlyConfigured("DPI_OIDC_ISSUER must be an https:// URL in production")

# Sessions: idle timeout enforced server-side (see access.middleware) and an absolute lifetime.
DPI_SESSION_IDLE_SECONDS = env_int("DPI_SESSION_IDLE_SECONDS", 15 * 60, minimum=60)
DPI_SESSION_ABSOLUTE_SECONDS = env_int("DPI_SESSION_ABSOLUTE_SECONDS", 12 * 3600, minimum=300)
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = DPI_SESSION_ABSOLUTE_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

# --- care-team authorization ------------------------------------------------------------------------------
DPI_POST_DISCHARGE_DAYS = env_int("DPI_POST_DISCHARGE_DAYS", 30, minimum=0)
DPI_BREAK_GLASS_HOURS = env_int("DPI_BREAK_GLASS_HOURS", 4, minimum=1, maximum=24)

# --- encryption keys (kept outside the database) ---------------------------------------------------------
DPI_KEYRING_FILE = Path(env_str("DPI_KEYRING_FILE", str(VAR_DIR / "keys" / "keyring.json")))
if PRODUCTION and not DPI_KEYRING_FILE.exists():
    raise ImproperlyConfigured(f"DPI_KEYRING_FILE {DPI_KEYRING_FILE} does not exist (generate it: manage.py keys_init)")
DPI_ARCHIVE_DIR = Path(env_str("DPI_ARCHIVE_DIR", str(VAR_DIR / "archive")))
DPI_BACKUP_DIR = Path(env_str("DPI_BACKUP_DIR", str(VAR_DIR / "backups")))
DPI_BACKUP_KEEP = env_int("DPI_BACKUP_KEEP", 14, minimum=1)  # most recent backups kept by the nightly task
DPI_PG_BIN_DIR = env_str("DPI_PG_BIN_DIR", "")  # pg_dump/pg_restore directory; default: found per server version

# --- retention (retention/policies.py) -------------------------------------------------------------------
DPI_RETENTION_PROFILE = env_str("DPI_RETENTION_PROFILE", "establishment")
if DPI_RETENTION_PROFILE not in {"establishment", "practice"}:
    raise ImproperlyConfigured(
        f"DPI_RETENTION_PROFILE must be 'establishment' or 'practice', got {DPI_RETENTION_PROFILE!r}"
    )
DPI_RETENTION_ACTIVE_YEARS = env_int("DPI_RETENTION_ACTIVE_YEARS", 5, minimum=1, maximum=20)

# --- audit ------------------------------------------------------------------------------------------------
DPI_AUDIT_CHECKPOINT_SECONDS = env_int("DPI_AUDIT_CHECKPOINT_SECONDS", 300, minimum=10)
DPI_AUDIT_RETENTION_MONTHS = env_int("DPI_AUDIT_RETENTION_MONTHS", 12, minimum=6, maximum=120)
# verify_audit: connections serialising the events at the same time (the database's part of the work; docs/audit.md)
DPI_AUDIT_VERIFY_STREAMS = env_int("DPI_AUDIT_VERIFY_STREAMS", 2, minimum=1, maximum=16)
# Witnesses of the signed checkpoints outside the database (docs/audit.md, "Threat model"): an append-only
# file on the archive storage, syslog RFC 5424 to a collector (udp://host:514 or tcp://host:601; empty: off),
# and an RFC 3161 time-stamping authority (URL; empty: off).
DPI_AUDIT_WITNESS_FILE = Path(env_str("DPI_AUDIT_WITNESS_FILE",
                                      str(DPI_ARCHIVE_DIR / "audit-witness" / "checkpoints.jsonl")))
DPI_AUDIT_SYSLOG = env_str("DPI_AUDIT_SYSLOG", "")
DPI_AUDIT_TSA_URL = env_str("DPI_AUDIT_TSA_URL", "")
DPI_AUDIT_TSA_CA_FILE = env_str("DPI_AUDIT_TSA_CA_FILE", "")  # the authority's CA (PEM), to check its tokens


def _env_json_object(name: str) -> dict:
    import json

    raw = env_str(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


# Detection of unusual access: overrides of audit/detection/config.py DEFAULTS (docs/detection.md).
DPI_DETECTION_THRESHOLDS = _env_json_object("DPI_DETECTION_THRESHOLDS")

# --- operations: /metrics (dpi/metrics.py) ----------------------------------------------------------------
# Bearer token for scrapers that are not on the loopback interface (empty: loopback only).
DPI_METRICS_TOKEN = env_str("DPI_METRICS_TOKEN", "")

# --- i18n -------------------------------------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# English as written in Europe (en-GB): day-month-year, 24-hour clock; never 09/03 for 3 September.
FORMAT_MODULE_PATH = ["dpi.formats"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DPI_STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "dpi" / "static"]
# `collectstatic` (run by `make run`, the compose web service and the Dockerfile) writes hashed, gzip-compressed
# copies to STATIC_ROOT; WhiteNoise serves them with `Cache-Control: max-age=31536000, immutable`. In-process
# tests (pytest sets PYTEST_VERSION) keep the plain storage so they need no collectstatic step; the launcher and
# browser tests run the real thing.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("DPI_STATIC_MANIFEST", not os.environ.get("PYTEST_VERSION"))
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_MAX_AGE = 31536000 if not DEBUG else 0
WHITENOISE_KEEP_ONLY_HASHED_FILES = False
WHITENOISE_ALLOW_ALL_ORIGINS = False  # same-origin only, like every other answer (Cross-Origin-Resource-Policy)

# --- e-mail (DPO notifications) ---------------------------------------------------------------------------
EMAIL_BACKEND = env_str("DPI_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("DPI_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DPI_EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DPI_EMAIL_FROM", "dpi@localhost")
DPI_DPO_EMAILS = env_list("DPI_DPO_EMAILS", "dpo@localhost")
# Who answers for the processing: printed in the register entry, the DPIA inputs and the patient notice
# (dpi/compliance/documents.py; CNIL DPI fiches 1 and 8).
DPI_CONTROLLER_NAME = env_str("DPI_CONTROLLER_NAME", "Centre hospitalier de démonstration")
DPI_CONTROLLER_ADDRESS = env_str("DPI_CONTROLLER_ADDRESS", "adresse à compléter")
DPI_DPO_CONTACT = env_str("DPI_DPO_CONTACT", "Délégué à la protection des données")

# --- REST API ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "dpi API",
    "VERSION": "0.1.0",
    # Separate request/response components (read-only fields are not asked for in requests).
    "COMPONENT_SPLIT_REQUEST": True,
    # The OpenAPI schema documents the REST API (/api/); FHIR publishes its own CapabilityStatement.
    "PREPROCESSING_HOOKS": ["dpi.api.schema_hooks.only_rest_api"],
}

# --- REST / FHIR API for hospital systems (dpi.api, dpi.fhir; see docs/api.md) ----------------------------
DPI_API_RATE_PER_MINUTE = env_int("DPI_API_RATE_PER_MINUTE", 600, minimum=1)
DPI_API_IDEMPOTENCY_HOURS = env_int("DPI_API_IDEMPOTENCY_HOURS", 24, minimum=1, maximum=720)
DPI_API_DOCUMENT_MAX_BYTES = env_int("DPI_API_DOCUMENT_MAX_BYTES", 20 * 1024 * 1024, minimum=1024)
# The CIM-10 list offered when coding problems (code TAB label per line); empty: the extract bundled with dpi.
DPI_CIM10_FILE = env_str("DPI_CIM10_FILE", "")
# Without Redis, each process limits API clients locally (dpi.api.throttling): at most this many processes
# share the configured rate, so one client cannot exceed it even through every gunicorn worker.
DPI_API_RATE_LOCAL_DIVISOR = env_int("DPI_API_RATE_LOCAL_DIVISOR", 1, minimum=1, maximum=64)
DPI_API_TOKEN_DAYS = env_int("DPI_API_TOKEN_DAYS", 365, minimum=1, maximum=3650)
# INS namespace sent in FHIR identifiers (FR Core): the real INS-NIR OID only in production; synthetic data
# carries the demonstration OID (.11) or the test OID (.10).
DPI_FHIR_INS_SYSTEM = env_str(
    "DPI_FHIR_INS_SYSTEM", "urn:oid:1.2.250.1.213.1.4.8" if PRODUCTION else "urn:oid:1.2.250.1.213.1.4.11"
)
if DPI_FHIR_INS_SYSTEM not in {
    "urn:oid:1.2.250.1.213.1.4.8",
    "urn:oid:1.2.250.1.213.1.4.10",
    "urn:oid:1.2.250.1.213.1.4.11",
}:
    raise ImproperlyConfigured(
        "DPI_FHIR_INS_SYSTEM must be the INS-NIR OID (...4.8), the test (...4.10) or "
        f"the demonstration OID (...4.11), got {DPI_FHIR_INS_SYSTEM!r}"
    )
DPI_FHIR_IPP_SYSTEM = env_str("DPI_FHIR_IPP_SYSTEM", "urn:dpi:ipp")
DPI_FHIR_ENCOUNTER_SYSTEM = env_str("DPI_FHIR_ENCOUNTER_SYSTEM", "urn:dpi:encounter")

# --- HL7 v2 listener (dpi.hl7, `manage.py hl7_listener`; see docs/hl7.md) ------------------------------------
# 2575 is the port IANA registers for HL7 over MLLP. Bind to an interface the integration network reaches only.
DPI_HL7_HOST = env_str("DPI_HL7_HOST", "127.0.0.1")
DPI_HL7_PORT = env_int("DPI_HL7_PORT", 2575, minimum=1, maximum=65535)
DPI_HL7_MAX_BYTES = env_int("DPI_HL7_MAX_BYTES", 1_000_000, minimum=10_000)  # larger frames close the connection
# This application's MSH-5/MSH-6 in acknowledgements.
DPI_HL7_APPLICATION = env_str("DPI_HL7_APPLICATION", "DPI")
DPI_HL7_FACILITY = env_str("DPI_HL7_FACILITY", "DPI")
# Who may send: MLLP carries no sender identity, so whoever reaches the port would be "the feed" (trusted
# admissions put the sender in care teams). Connections from outside these networks are closed unread and
# recorded as denied (basis deny:hl7_sender). Default: this machine only. With DPI_PRODUCTION the listener refuses
# to bind beyond the loopback unless the list is given explicitly (dpi.hl7.mllp.startup_refusal).
DPI_HL7_ALLOWED_NETWORKS = env_list("DPI_HL7_ALLOWED_NETWORKS", "127.0.0.0/8,::1")
DPI_HL7_ALLOWED_NETWORKS_EXPLICIT = bool(os.environ.get("DPI_HL7_ALLOWED_NETWORKS", "").strip())
for _network in DPI_HL7_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DPI_HL7_ALLOWED_NETWORKS: {_network!r} is not a network (CIDR): {exc}") from exc
# MLLP over TLS, the sender proving itself with a certificate issued by DPI_HL7_TLS_CLIENT_CA (all three or none).
DPI_HL7_TLS_CERT = os.environ.get("DPI_HL7_TLS_CERT", "")  # paths, not secrets: no _FILE form
DPI_HL7_TLS_KEY = os.environ.get("DPI_HL7_TLS_KEY", "")
DPI_HL7_TLS_CLIENT_CA = os.environ.get("DPI_HL7_TLS_CLIENT_CA", "")
if any((DPI_HL7_TLS_CERT, DPI_HL7_TLS_KEY, DPI_HL7_TLS_CLIENT_CA)) and not all(
    (DPI_HL7_TLS_CERT, DPI_HL7_TLS_KEY, DPI_HL7_TLS_CLIENT_CA)
):
    raise ImproperlyConfigured("DPI_HL7_TLS_CERT, DPI_HL7_TLS_KEY and DPI_HL7_TLS_CLIENT_CA go together")

# --- security headers -------------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DPI_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DPI_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# Structured JSON logs with the request id, never a patient trait (dpi/logs.py; README "Logs").
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "dpi.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env_str("DPI_LOG_LEVEL", "INFO")},
    "loggers": {
        "faker": {"level": "WARNING"},
        # SQL with its parameters (encrypted values, blind indexes, dates) is never logged, even at DEBUG.
        "django.db.backends": {"level": "INFO"},
        # Django's own handlers (mail_admins, the runserver console) are replaced by the JSON console.
        "django": {"handlers": ["console"], "level": env_str("DPI_LOG_LEVEL", "INFO"), "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- identity vigilance (patients) -------------------------------------------------------------------------
# INSi teleservice: the local simulator (synthetic referential) by default; "national" in production, with the
# establishment's certificate for mutual TLS.
DPI_INSI_BACKEND = env_str("DPI_INSI_BACKEND", "simulator")
if DPI_INSI_BACKEND not in {"simulator", "national"}:
    raise ImproperlyConfigured(f"DPI_INSI_BACKEND must be 'simulator' or 'national', got {DPI_INSI_BACKEND!r}")
DPI_INSI_ENDPOINT = env_str("DPI_INSI_ENDPOINT", "")
DPI_INSI_CERT_FILE = env_str("DPI_INSI_CERT_FILE", "")
DPI_INSI_KEY_FILE = env_str("DPI_INSI_KEY_FILE", "")
DPI_INSI_CA_FILE = env_str("DPI_INSI_CA_FILE", "")  # the national service's CA bundle (default: the system's)
DPI_INSI_SIMULATOR_FILE = env_str("DPI_INSI_SIMULATOR_FILE", "")
# Reference list of INSEE birth places (communes and countries); empty: the bundled subset of the COG.
DPI_INSEE_PLACES_FILE = env_str("DPI_INSEE_PLACES_FILE", "")
# A merge can be undone for this many days (then the identity-vigilance cell must split the file instead).
DPI_IDENTITY_UNMERGE_DAYS = env_int("DPI_IDENTITY_UNMERGE_DAYS", 30, minimum=1, maximum=3650)
