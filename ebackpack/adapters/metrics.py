"""Prometheus metrics of every e-Backpack process (prometheus_client, the process-wide default registry).

What is counted where (labels in braces):

- `ebackpack_messages_in_total{topic,consumer}`: streaming/steps.py `CountMessagesIn`
- `ebackpack_messages_out_total{topic}`: streaming/app.py's faust sensor, every acknowledged send
- `ebackpack_processing_seconds{consumer}` (histogram): streaming/steps.py `RecordProcessed`, per message
- `ebackpack_batch_seconds{consumer}` (histogram): streaming/steps.py `RecordProcessed`, per batch
- `ebackpack_dead_letters_total{consumer,reason}` (reason = error type): streaming/steps.py `SendDeadLetters`
- `ebackpack_consumer_paused{consumer}`: streaming/health.py, streams paused on a dependency that is down
- `ebackpack_offset_resets_total{group,topic}`: streaming/offset_guard.py, partitions read again because
  the group had committed beyond the log end (the broker lost data)
- `ebackpack_parked_messages{consumer}`: services/issuer/agent.py, messages waiting for a profile
- `ebackpack_consumer_lag{group,topic,partition}`: each worker, every `LAG_INTERVAL` s, for its group
- `ebackpack_renders_total{outcome}`: services/renderer/service.py
- `ebackpack_imports_total{outcome,status}`: services/importer/service.py
- `ebackpack_http_requests_total{app,route,method,status}`, `ebackpack_http_request_seconds{app,route}`:
  the `install_http_metrics` middleware of the web apps

Workers serve them on `settings.metrics_port` (0 = off) with `serve_worker_metrics`; the web apps at
`/metrics` on their own port in the embedded stack (`install_http_metrics`), on `metrics_port` outside it.
Label values stay few: topics and consumers are ours, `reason` is the exception class, `route` the
route's template (`/verify/{code}`), never the path.

Several replicas of a worker each report the lag of their whole group (the same numbers): aggregate
with `max by (group, topic, partition)`, not `sum`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ebackpack.config import Settings

log = logging.getLogger(__name__)

LAG_INTERVAL = 10.0  # seconds between two lag samples of a worker
MAX_LABEL = 80  # characters of a free-form label value (error type)

MESSAGES_IN = Counter(
    "ebackpack_messages_in",
    "Messages a consumer took from a topic, whatever became of them "
    "(handled, dead-lettered); a redelivered message counts again.",
    ["topic", "consumer"],
)
MESSAGES_OUT = Counter(
    "ebackpack_messages_out",
    "Messages a worker sent and the broker acknowledged, per topic (dead letters included).",
    ["topic"],
)
PROCESSING_SECONDS = Histogram(
    "ebackpack_processing_seconds",
    "Time to handle one message, retries included. Batched consumers "
    "(the issuer) record their batch's time divided by its size for each message.",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
BATCH_SECONDS = Histogram(
    "ebackpack_batch_seconds",
    "Time to handle one batch of messages (batched consumers only).",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
DEAD_LETTERS = Counter(
    "ebackpack_dead_letters",
    "Messages a consumer gave up on and wrote to its dead-letter topic; "
    "reason = the error type (InvalidMessage, GaveUp, a bug's exception class).",
    ["consumer", "reason"],
)
CONSUMER_LAG = Gauge(
    "ebackpack_consumer_lag",
    "Messages of a topic partition the consumer group has not committed yet "
    "(end offset - committed offset), sampled by the group's own workers.",
    ["group", "topic", "partition"],
)
CONSUMER_LAG_SAMPLED = Gauge(
    "ebackpack_consumer_lag_sampled_timestamp_seconds",
    "When this worker last read its group's lag from "
    "the broker (unix time); stale = the broker did not answer.",
    ["group"],
)
RENDERS = Counter(
    "ebackpack_renders",
    "Certificate render requests by outcome: stored (a PDF rendered and stored), "
    "already_stored (announced again, nothing rendered), failed (an attempt raised; retries count "
    "again).",
    ["outcome"],
)
IMPORTS = Counter(
    "ebackpack_imports",
    "Attestation checks (first imports and re-verifications) by outcome "
    "(imported, rejected) and verification status (verified, unverified, ...; empty when rejected).",
    ["outcome", "status"],
)
CONSUMER_PAUSED = Gauge(
    "ebackpack_consumer_paused",
    "Streams of a consumer paused on a dependency that is down (database, S3, "
    "broker): the same message is tried again with backoff, nothing later is taken. 0 = flowing.",
    ["consumer"],
)
PARKED_MESSAGES = Gauge(
    "ebackpack_parked_messages",
    "Messages parked until the data they wait for arrives (the issuer: "
    "completions whose learner or course profile has not arrived), sampled by the consumer.",
    ["consumer"],
)
HTTP_REQUESTS = Counter(
    "ebackpack_http_requests",
    "HTTP requests answered by a web app, by route template and status.",
    ["app", "route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "ebackpack_http_request_seconds",
    "Time to answer an HTTP request, by route template.",
    ["app", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

ALL: tuple[MetricWrapperBase, ...] = (
    MESSAGES_IN,
    MESSAGES_OUT,
    PROCESSING_SECONDS,
    BATCH_SECONDS,
    DEAD_LETTERS,
    CONSUMER_LAG,
    CONSUMER_LAG_SAMPLED,
    RENDERS,
    IMPORTS,
    HTTP_REQUESTS,
    HTTP_SECONDS,
    CONSUMER_PAUSED,
    PARKED_MESSAGES,
)

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exposed_names() -> set[str]:
    """Every sample name these metrics expose (`ebackpack_renders_total`, `..._seconds_bucket`, ...)."""
    names: set[str] = set()
    for metric in ALL:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


# --- updates -------------------------------------------------------------------------------------------


def message_in(topic: str, consumer: str, count: int = 1) -> None:
    MESSAGES_IN.labels(topic, consumer).inc(count)


def message_out(topic: str) -> None:
    MESSAGES_OUT.labels(topic).inc()


def processed(consumer: str, seconds: float, count: int = 1) -> None:
    """`count` messages handled in `seconds` (one message, or a batch: each gets the mean)."""
    if count <= 0:
        return
    child = PROCESSING_SECONDS.labels(consumer)
    for _ in range(count):
        child.observe(seconds / count)


def batch_processed(consumer: str, seconds: float) -> None:
    BATCH_SECONDS.labels(consumer).observe(seconds)


def dead_lettered(consumer: str, error_type: str) -> None:
    DEAD_LETTERS.labels(consumer, error_type[:MAX_LABEL] or "Exception").inc()


def consumer_paused(consumer: str, streams: int) -> None:
    CONSUMER_PAUSED.labels(consumer).set(streams)


def parked(consumer: str, count: int) -> None:
    PARKED_MESSAGES.labels(consumer).set(count)


def rendered(outcome: str, count: int = 1) -> None:
    """outcome: `stored`, `already_stored` or `failed`."""
    if count:
        RENDERS.labels(outcome).inc(count)


def imported(outcome: str, status: str | None) -> None:
    """outcome: `imported` or `rejected`; status: the verification status (None when rejected)."""
    IMPORTS.labels(outcome, status or "").inc()


_lag_series: dict[str, set[tuple[str, str]]] = {}
_lag_lock = threading.Lock()


def set_consumer_lag(group: str, lags: Mapping[tuple[str, int], int]) -> None:
    """The lag of every partition of `group` now; partitions reported before but not now are dropped."""
    with _lag_lock:
        now = {(topic, str(partition)) for topic, partition in lags}
        for topic, label in _lag_series.get(group, set()) - now:
            CONSUMER_LAG.remove(group, topic, label)
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(group, topic, str(partition)).set(lag)
        _lag_series[group] = now
        CONSUMER_LAG_SAMPLED.labels(group).set(time.time())


def sample_value(name: str, labels: Mapping[str, str] | None = None) -> float:
    """The current value of one sample (0 when it does not exist yet): for tests and the status view."""
    return REGISTRY.get_sample_value(name, dict(labels or {})) or 0.0


# --- serving -------------------------------------------------------------------------------------------

_served: dict[int, Any] = {}
_serve_lock = threading.Lock()


def serve_worker_metrics(settings: Settings) -> bool:
    """Serve /metrics on `settings.metrics_port` (0 = off) in a background thread, once per process.

    The address is `settings.http_host` (127.0.0.1 unless configured: in containers set
    `EBACKPACK_HTTP_HOST=0.0.0.0` so that Prometheus can reach the worker). True if serving; a port that
    is taken is logged as an error and the worker runs on without metrics.
    """
    port = settings.metrics_port
    if not port:
        return False
    from prometheus_client import start_http_server

    with _serve_lock:
        if port not in _served:
            try:
                _served[port] = start_http_server(port, addr=settings.http_host)
            except OSError as exc:  # e.g. two workers given the same port: run on, without metrics
                log.error("metrics not served on %s:%d: %s", settings.http_host, port, exc)
                return False
            log.info("metrics on http://%s:%d/metrics", settings.http_host, port)
    return True


def metrics_response_body() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _route_of(scope: Scope, root_path: str) -> str:
    """The template of the route that answered (`/verify/{code}`, a mount's `/static/{path}`)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    # FastAPI's router does not record a mount in the scope, but the mount extends its root path.
    mounted = scope.get("root_path", "")
    if isinstance(mounted, str) and len(mounted) > len(root_path) and mounted.startswith(root_path):
        return mounted[len(root_path) :] + "/{path}"
    return "(unmatched)"


class HttpMetricsMiddleware:
    """Pure ASGI: counts every HTTP response (also those middlewares answer: 429, error pages) by the
    template of the route that handled it; requests no route matched share `(unmatched)`."""

    def __init__(self, app: ASGIApp, app_name: str) -> None:
        self.app = app
        self.app_name = app_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = "500"

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_of(scope, root_path)
            HTTP_REQUESTS.labels(self.app_name, route, scope.get("method", ""), status).inc()
            HTTP_SECONDS.labels(self.app_name, route).observe(time.perf_counter() - started)


def install_http_metrics(app: FastAPI, app_name: str, path: str = "/metrics", public: bool = True) -> None:
    """The request counter on a FastAPI app and, when `public`, `GET /metrics` (Prometheus text format)
    on the app's own port. Outside the embedded stack the web apps pass `public=False`: the metrics are
    then served on `metrics_port` only (`adapters.webserver.run`), not to everyone who reaches the site.

    Add it last (outermost) so that it sees the answers of every other middleware too.
    """
    from starlette.requests import Request
    from starlette.responses import Response

    async def metrics_endpoint(_request: Request) -> Response:
        body, content_type = metrics_response_body()
        return Response(body, media_type=content_type)

    if public:
        app.add_route(path, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(HttpMetricsMiddleware, app_name=app_name)
