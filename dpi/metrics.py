"""Prometheus metrics at ``/metrics`` (prometheus-client), for the IT team's monitoring.

What is counted never identifies a patient or a user: requests are labelled by their URL *pattern*
(``patients/<int:pk>/``, never the id), gate decisions by their basis (``care:encounter``, ``deny:objection``),
tasks by name. Values read from the database at scrape time (audit chain queue and lag, detection lag) come
from one small query each.

Access: from the loopback interface, or with ``Authorization: Bearer <DPI_METRICS_TOKEN>``; anyone else gets
a 404. With several gunicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, wiped at start)
so that every worker's counters are summed (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

REQUESTS = Counter("dpi_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("dpi_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
GATE = Counter("dpi_gate_decisions", "Access decisions of the gate", ["outcome", "basis"])
OUTAGES = Counter("dpi_outage_responses", "Requests answered 503 because the database was unreachable")
RATE_LIMIT_DEGRADED = Counter("dpi_api_rate_limit_degraded",
                              "API requests rate-limited by the local fallback because Redis was unreachable")
STALE_RUNS = Counter("dpi_stale_runs_failed", "Long runs marked failed because their worker stopped beating",
                     ["kind"])


_GATE_COUNTERS: dict[tuple[bool, str], Counter] = {}  # the labelled counters, as GATE.labels keeps them


def gate_decision(*, allowed: bool, basis: str) -> None:
    # Every audited read counts its decisions: the labelled counter is looked up once per (outcome, basis)
    # instead of through ``labels`` (its argument checks and lock) each time.
    counter = _GATE_COUNTERS.get((allowed, basis))
    if counter is None:
        counter = _GATE_COUNTERS[(allowed, basis)] = GATE.labels("allowed" if allowed else "denied", basis[:40])
    counter.inc()


def outage_answered() -> None:
    OUTAGES.inc()


def _task_failures_key() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:metrics:task_failures"


def task_failed(name: str) -> None:
    """Counted in Redis: tasks fail in the worker, the web process is the one scraped."""
    from django.core.cache import cache

    try:
        cache._cache.get_client(write=True).hincrby(_task_failures_key(), name[:80], 1)  # type: ignore[attr-defined]
    except Exception as exc:  # Redis down: the failure itself is in the worker's log
        logger.warning("metrics: task failure of %s not counted: %s", name, type(exc).__name__)


class TaskFailureCollector(Collector):
    def describe(self) -> list[Metric]:
        return []  # registering must not reach Redis

    def collect(self) -> Iterator[Metric]:
        from django.core.cache import cache

        family = CounterMetricFamily("dpi_task_failures", "Celery tasks that failed (after their retries)",
                                     labels=["task"])
        try:
            counts = cache._cache.get_client().hgetall(_task_failures_key())  # type: ignore[attr-defined]
        except Exception as exc:
            logger.warning("metrics: task failures unavailable: %s", type(exc).__name__)
            counts = {}
        for name, count in sorted(counts.items()):
            family.add_metric([name.decode() if isinstance(name, bytes) else name], float(count))
        yield family


class DatabaseCollector(Collector):
    """Gauges read at scrape time: audit chain queue and lag, last signed checkpoint, detection lag."""

    def describe(self) -> list[Metric]:
        return []  # registering must not query the database (prometheus-client calls collect() otherwise)

    def collect(self) -> Iterator[Metric]:
        from django.db import connections

        try:
            with connections["default"].cursor() as cur:
                cur.execute("""
                    SELECT (SELECT count(*) FROM audit_chainpending),
                           (SELECT extract(epoch FROM now() - min(event_occurred_at)) FROM audit_chainpending),
                           (SELECT extract(epoch FROM now() - max(signed_at)) FROM audit_auditcheckpoint),
                           (SELECT extract(epoch FROM now() - watermark) FROM detection_detectionstate
                             WHERE name = 'default')""")
                pending, chain_lag, checkpoint_age, detection_lag = cur.fetchone()
        except Exception as exc:  # a scrape during an outage still returns the process metrics
            logger.warning("metrics: database gauges unavailable: %s", type(exc).__name__)
            yield GaugeMetricFamily("dpi_database_up", "PostgreSQL answered the metrics query", value=0)
            return
        yield GaugeMetricFamily("dpi_database_up", "PostgreSQL answered the metrics query", value=1)
        yield GaugeMetricFamily("dpi_audit_chain_pending", "Committed access events waiting for their chain link",
                                value=pending)
        yield GaugeMetricFamily("dpi_audit_chain_lag_seconds", "Age of the oldest event waiting for its link",
                                value=float(chain_lag or 0))
        if checkpoint_age is not None:
            yield GaugeMetricFamily("dpi_audit_checkpoint_age_seconds", "Time since the last signed checkpoint",
                                    value=float(checkpoint_age))
        if detection_lag is not None:
            yield GaugeMetricFamily("dpi_detection_lag_seconds", "Time since the detector's watermark",
                                    value=float(detection_lag))


_scrape_collectors = (DatabaseCollector(), TaskFailureCollector())
for _collector in _scrape_collectors:
    REGISTRY.register(_collector)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _scrape_collectors:
            registry.register(collector)
        return registry
    return REGISTRY


def _allowed(request: HttpRequest) -> bool:
    token = settings.DPI_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    # REMOTE_ADDR, not X-Forwarded-For: behind a proxy on the same host only the token opens it.
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback and not (
            request.headers.get("X-Forwarded-For"))
    except ValueError:
        return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts every request and its latency, labelled by the matched URL pattern."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name or "") if match else "unmatched"
        route = route[:100] or "unmatched"
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(request.method, route).observe(time.perf_counter() - start)
        return response


def _task_failure(sender=None, **kwargs) -> None:
    task_failed(getattr(sender, "name", "") or "unknown")


def connect_celery_signals() -> None:
    from celery.signals import task_failure

    task_failure.connect(_task_failure, weak=False, dispatch_uid="dpi.metrics.task_failure")
