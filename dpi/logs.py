"""Structured logs: one JSON object a line, carrying the request id, never a patient trait.

A log line may name ids (patient, user, task, audit event) but never a name, a birth date, an INS/NIR or an
IPP (CNIL, référentiel "dossier patient" § journalisation; the patient record is health data, art. 9 GDPR,
and logs are copied to places the record's protections do not reach). Three rules make that hold whatever
a library logs:

* no query string: the access log writes the path only (searches put identifiers in ``?q=``, ``?ins=``,
  ``?identifier=``, ``?family=``) and any URL in a message loses its query string;
* no exception message: a traceback keeps the exception's class and the code locations, not its text
  (a database error quotes the value it refused);
* no task payload: Celery's "task succeeded" and "task failed" lines lose their return value, arguments
  and exception text.

Digit runs as long as an INS/NIR (13 to 15 digits) are masked in every message as a last safeguard.

Used by Django (``LOGGING`` in settings), gunicorn (``dpi/gunicorn_conf.py``) and Celery (``dpi/celery.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import traceback
from typing import Any

from gunicorn.glogging import Logger as _GunicornLogger

# The attributes every LogRecord has; anything else on a record was passed with ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# A URL's query string (after a path or a full URL) up to the next blank or quote.
_QUERY_RE = re.compile(r"(?P<path>(?:https?://[^\s/?\"']+)?/[^\s?\"']*)\?[^\s\"']+")
# An INS/NIR (13 digits + 2-digit key), possibly spaced as printed on a card.
_NIR_RE = re.compile(r"(?<!\d)[12378](?:[\s.]?\d){12}(?:(?:[\s.]?\d){2})?(?!\d)")
# Celery's trace messages carry the task's return value, arguments and exception text in their arguments.
_TASK_PAYLOAD_KEYS = frozenset({"return_value", "args", "kwargs", "exc", "traceback", "einfo"})
REDACTED = "[redacted]"


def mask_nir(text: str) -> str:
    """The text with its INS/NIR-like digit runs masked (for what a client chooses: a header, a user agent)."""
    return _NIR_RE.sub(REDACTED, text)


def scrub(text: str) -> str:
    """The text without query strings and without INS/NIR-like digit runs."""
    text = _QUERY_RE.sub(lambda m: m.group("path") + "?" + REDACTED, text)
    return _NIR_RE.sub(REDACTED, text)


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_REQUEST_LINE_RE = re.compile(r"^(?P<method>[A-Z]{3,10} )(?P<path>/[^\s?]*)")
_path_words: frozenset[str] | None = None


def _route_words() -> frozenset[str]:
    """The literal words of every URL pattern (and the FHIR resource types): what a path may show."""
    global _path_words  # noqa: PLW0603 - computed once per process
    if _path_words is None:
        from django.urls import URLResolver, get_resolver

        words: set[str] = set()

        def walk(resolver):
            for p in resolver.url_patterns:
                words.update(_WORD_RE.findall(str(p.pattern)))
                if isinstance(p, URLResolver):
                    walk(p)

        walk(get_resolver())
        try:
            from dpi.fhir.views import TYPES

            words.update(TYPES)
        except Exception:  # noqa: BLE001, S110 - without them FHIR type names are masked, no harm
            pass
        _path_words = frozenset(words)
    return _path_words


def scrub_path(path: str) -> str:
    """The URL path with every segment that is neither a literal of a route nor an id masked: a path is
    chosen by the client, who may put a name in it (``/fhir/Patient/DUPONT``, a mistyped admin URL)."""
    if path.startswith("/static/"):
        return path
    try:
        words = _route_words()
    except Exception:  # noqa: BLE001 - before Django is set up: mask every segment but ids
        words = frozenset()
    kept = []
    for segment in path.split("/"):
        parts = segment.split(".")
        ok = all(p in words or (p.isdigit() and len(p) <= 19) for p in parts) or segment == ""
        kept.append(segment if ok else REDACTED)
    return "/".join(kept)


def _scrub_arg(value: Any) -> Any:
    # Django logs the path ("Not Found: %s") and runserver the request line ('"%s" %s %s').
    if isinstance(value, str):
        if value.startswith("/"):
            return scrub_path(value.split("?", 1)[0])
        m = _REQUEST_LINE_RE.match(value)
        if m:
            return m.group("method") + scrub_path(m.group("path")) + value[m.end():]
    return value


def _request_id() -> str:
    # The request id lives in the audit context (set per request by audit.middleware, per task by
    # dpi.celery): imported late so that this module loads before Django's apps.
    try:
        from audit.context import current
    except Exception:  # noqa: BLE001 - logging must never fail on a broken import
        return ""
    return current().request_id


def _task() -> dict[str, str]:
    celery = sys.modules.get("celery")
    if celery is None:
        return {}
    task = getattr(celery, "current_task", None)
    request = getattr(task, "request", None) if task else None
    task_id = getattr(request, "id", None)
    if not task_id:
        return {}
    found = {"task_id": str(task_id), "task": str(getattr(task, "name", ""))}
    # The request that queued the task (header added by dpi.celery on publish).
    request_id = getattr(request, "dpi_request_id", None)
    if request_id:
        found["request_id"] = str(request_id)
    return found


def _exception(exc_info) -> dict[str, Any]:
    exc_type, _exc, tb = exc_info
    frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]
    return {"exc_type": f"{exc_type.__module__}.{exc_type.__qualname__}", "stack": frames[-20:]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return scrub(value) if isinstance(value, str) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return scrub(str(value))


# Python warnings (a library's UserWarning) go through logging too, so they come out as JSON lines.
logging.captureWarnings(True)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, task, extras, exception type."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "_dpi_access", False):
            return self._access_line(record)
        if isinstance(record.args, dict) and _TASK_PAYLOAD_KEYS & record.args.keys():
            record.args = {k: (REDACTED if k in _TASK_PAYLOAD_KEYS else v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple) and record.name.startswith("django."):
            record.args = tuple(_scrub_arg(a) for a in record.args)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = str(record.msg)
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(message),
            "request_id": getattr(record, "request_id", None)
            or getattr(getattr(record, "request", None), "request_id", None)  # Django's request logs
            or _request_id(),
            "pid": record.process,
        }
        task = _task()
        if entry["request_id"] and "request_id" in task:
            del task["request_id"]
        entry.update(task)
        for key, value in vars(record).items():
            # Extras of plain types only: an object's repr (Django puts the request on its records) may
            # quote what the rules above remove.
            if key not in _RECORD_ATTRS and key not in entry and not key.startswith("_") and isinstance(
                value, str | int | float | bool | dict | list | tuple
            ):
                entry[key] = _jsonable(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry.update(_exception(record.exc_info))
        elif record.exc_text:
            entry["exc_type"] = REDACTED
        return json.dumps(entry, ensure_ascii=False, default=str)

    @staticmethod
    def _access_line(record: logging.LogRecord) -> str:
        """What ``format`` writes for gunicorn's access record (``GunicornLogger.access``: its message, its
        ``request_id`` and its flat ``http`` dict, nothing else), without the general case's walk over the
        record: one line per request (issue #18). ``tests/test_logs_carry_no_patient_trait.py`` checks that
        both give the same line."""
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "request_id": record.request_id or _request_id(),  # type: ignore[attr-defined]
            "pid": record.process,
        }
        task = _task()
        if entry["request_id"] and "request_id" in task:
            del task["request_id"]
        entry.update(task)
        entry["http"] = {k: scrub(v) if isinstance(v, str) else v for k, v in record.http.items()}  # type: ignore[attr-defined]
        return json.dumps(entry, ensure_ascii=False, default=str)


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger writing JSON: the access line has the method, the path without its query string,
    the status, the size, the duration and the request id; never the query string or the referrer (which
    holds the previous page's full URL)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        path = scrub_path(environ.get("PATH_INFO", "-"))
        request_id = ""
        for name, value in resp.headers:
            if name.lower() == "x-request-id":
                request_id = value
        log = self.access_log
        if not log.isEnabledFor(logging.INFO):
            return
        method = environ.get("REQUEST_METHOD", "-")
        # The record made directly (no look-up of the calling frame: the line does not name it) and marked for
        # JsonFormatter's short path; its fields are those of any other line (issue #18).
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status), None, extra={
            "request_id": request_id,
            "http": {
                "method": method,
                "path": path,
                "has_query": bool(environ.get("QUERY_STRING")),
                "status": int(status) if str(status).isdigit() else str(status),
                "bytes": getattr(resp, "sent", None),
                "duration_ms": request_time.seconds * 1000 + request_time.microseconds // 1000,
                "remote": environ.get("REMOTE_ADDR", "-"),
            },
            "_dpi_access": True,
        })
        log.handle(record)
