"""The gateway's webhook: a Moodle plugin's event observer POSTs `\\core\\event\\base::get_data()` here.

    POST /moodle/events    one event object, or {"site": "<site id>", "events": [...]} (<= 500 events)
        X-Ebackpack-Site: <site id>                 must be this gateway's `site_id`
        X-Ebackpack-Timestamp: <unix seconds>       within +-`gateway_replay_seconds` of now
        X-Ebackpack-Signature: sha256=<hex>         HMAC-SHA256(gateway_secret, "<timestamp>.<raw body>")
    GET /healthz
    GET /metrics         Prometheus metrics (ebackpack/adapters/metrics.py)

Answers:

- 202 `{"accepted": n, "duplicates": d, "ignored": i}` once the broker acknowledged every accepted event
  (`acks=all`); only then are the events recorded in the ledger (`gateway_events`, source "webhook").
  Events whose name is not in `USED` are ignored; events published before (by the webhook, the poller
  or an import) or twice in one request are duplicates and not sent again.
- 401 missing or bad signature headers, stale timestamp; 403 another site; 413 body over 1 MiB or more
  than 500 events; 422 not JSON, wrong shape or an event Moodle's shape does not fit (index + field);
  nothing of a refused request is published.
- 503 + Retry-After: no secret configured, more than `gateway_max_pending` requests at once
  (backpressure), Moodle did not give the profiles in time, the broker did not acknowledge in time, or
  the request was not done within `REQUEST_DEADLINE` seconds (the text names the step). Nothing is
  recorded then: the plugin sends the same request again and loses nothing.

Every request is answered within `REQUEST_DEADLINE` seconds of its arrival, well inside the plugin's 30 s
request timeout, so the plugin always sees the Retry-After: each step (reading profiles from Moodle,
publishing them, the ledger, publishing the events) gets what is left of that deadline, every producer
is bounded the same way (`publisher.bounded_producer`), and the request as a whole is cut at the deadline.

Run it: `uvicorn --factory services.gateway.webhook:from_environment` (settings from `EBACKPACK_*`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.metrics import install_http_metrics
from ebackpack.bootstrap import build
from ebackpack.config import Settings, get_settings
from ebackpack.streaming.topics import MOODLE_EVENTS
from schemas.moodle import MoodleEvent
from services.gateway.events import (
    USED,
    Message,
    PublishedEvents,
    moodle_message,
    plan,
    problems,
)
from services.gateway.profiles import ProfilesUnavailable, ProfileSync
from services.gateway.publisher import BrokerUnavailable, ProducerSlot, send_all

log = logging.getLogger(__name__)

PATH = "/moodle/events"
SITE_HEADER = "X-Ebackpack-Site"
TIMESTAMP_HEADER = "X-Ebackpack-Timestamp"
SIGNATURE_HEADER = "X-Ebackpack-Signature"
SIGNATURE_PREFIX = "sha256="
MAX_BODY = 1_048_576  # bytes
MAX_EVENTS = 500  # per request
MAX_DEPTH = 32  # JSON nesting; a batch, its events and their `other` need about five levels
REQUEST_DEADLINE = 5.0  # seconds from a request's arrival to its answer, whatever fails (plugin: 30 s)
ACK_TIMEOUT = 4.0  # seconds the broker has to acknowledge (each producer wait is bounded by this too)
RETRY_AFTER_BROKER = 10  # seconds, Retry-After when the broker, Moodle or the database failed
RETRY_AFTER_BUSY = 1  # seconds, Retry-After when too many requests are pending
SOURCE = "webhook"  # in the ledger


class WebhookRefused(Exception):  # noqa: N818 - the contract's name
    """A request the webhook answers with `status` and `reason` (and publishes nothing of)."""

    def __init__(
        self, status: int, reason: str, *, extra: dict[str, Any] | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.extra = extra or {}
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return AsciiJSONResponse(
            {"detail": self.reason, **self.extra}, status_code=self.status, headers=headers
        )


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a reason that quotes the request (a lone surrogate in a site id, say)
    always renders, where UTF-8 encoding would fail with a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


# --- signature (shared with the PHP plugin: hash_hmac('sha256', "$timestamp.$body", $secret)) -----------


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The `X-Ebackpack-Signature` value of `body` sent at `timestamp` (unix seconds)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    message = str(timestamp).encode("ascii") + b"." + body
    return SIGNATURE_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes | None,
    timestamp: str | None,
    body: bytes,
    header: str | None,
    now: float,
    window: int,
) -> None:
    """Accept (return None) or raise `WebhookRefused`: 503 without a secret, else 401 with the reason.

    `timestamp` and `header` are the raw header values (None when absent); the HMAC covers the
    timestamp exactly as sent, a dot, and the raw body bytes.
    """
    if not secret:
        raise WebhookRefused(
            503,
            "webhook not configured: the gateway has no shared secret (EBACKPACK_GATEWAY_SECRET)",
            retry_after=RETRY_AFTER_BROKER * 6,
        )
    if timestamp is None:
        raise WebhookRefused(401, f"missing {TIMESTAMP_HEADER} header (unix seconds)")
    if header is None:
        raise WebhookRefused(401, f"missing {SIGNATURE_HEADER} header ({SIGNATURE_PREFIX}<hex>)")
    value = timestamp.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        hint = " (milliseconds?)" if value.isdigit() and len(value) == 13 else ""
        raise WebhookRefused(
            401, f"{TIMESTAMP_HEADER} must be unix seconds (digits), got {timestamp[:20]!r}{hint}"
        )
    skew = int(value) - now
    if skew < -window:
        raise WebhookRefused(
            401, f"stale timestamp: {-skew:.0f} s behind the gateway's clock (allowed: {window} s either way)"
        )
    if skew > window:
        raise WebhookRefused(
            401,
            f"stale timestamp: {skew:.0f} s ahead of the gateway's clock (allowed: {window} s either way)",
        )
    given = header.strip()
    if not given.lower().startswith(SIGNATURE_PREFIX):
        raise WebhookRefused(401, f"{SIGNATURE_HEADER} must be {SIGNATURE_PREFIX}<hex of HMAC-SHA256>")
    digest = given[len(SIGNATURE_PREFIX) :].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise WebhookRefused(401, f"{SIGNATURE_HEADER} must be {SIGNATURE_PREFIX} and 64 hex digits")
    expected = sign(secret, value, body)[len(SIGNATURE_PREFIX) :]
    if not hmac.compare_digest(digest.encode("ascii"), expected.encode("ascii")):
        raise WebhookRefused(
            401,
            "signature does not match: HMAC-SHA256 with the shared secret over "
            "'<timestamp>.<body>' (wrong secret, or the body changed on the way)",
        )


# --- body -> events ----------------------------------------------------------------------------------

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, read without parsing it (brackets inside
    strings do not count; a broken text may count deeper, which only refuses it sooner)."""
    depth = deepest = 0
    for byte in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large for a number")
    return value


def parse_events(body: bytes, site: str) -> list[MoodleEvent]:
    """Every event of the body, validated and publishable, or `WebhookRefused` (413/422/403) naming the
    first bad one. Nothing a body holds makes this raise anything else: nesting is bounded before the
    parser sees it, numbers are range-checked and each event is tried as the message it becomes."""
    if json_depth(body) > MAX_DEPTH:
        raise WebhookRefused(422, f"body is not JSON an event can be: nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WebhookRefused(422, f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WebhookRefused(422, 'body must be a JSON object: one event, or {"site": ..., "events": [...]}')
    if "events" in data:
        items = data["events"]
        if not isinstance(items, list):
            raise WebhookRefused(
                422, 'batch: "events" must be a list of event objects', extra={"field": "events"}
            )
        if not isinstance(data.get("site"), str):
            raise WebhookRefused(
                422, 'batch: "site" (the site id, a string) is missing', extra={"field": "site"}
            )
        if data["site"] != site:
            raise WebhookRefused(
                403, f"the batch is from site {data['site'][:200]!r}, its {SITE_HEADER} header says {site!r}"
            )
        if len(items) > MAX_EVENTS:
            raise WebhookRefused(413, f"{len(items)} events in one request; at most {MAX_EVENTS}")
    else:
        items = [data]
    events: list[MoodleEvent] = []
    found: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            event = MoodleEvent.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = ".".join(str(part) for part in error["loc"]) or "(the event itself)"
                found.append({"index": index, "field": where, "message": error["msg"]})
            continue
        found += [{"index": index, **problem} for problem in problems(site, event)]
        events.append(event)
    if found:
        first = found[0]
        count = len({p["index"] for p in found})
        raise WebhookRefused(
            422,
            f"event {first['index']}: field {first['field']}: {first['message']}"
            f"{f' (and {count - 1} more invalid events)' if count > 1 else ''}; nothing was published",
            extra={"index": first["index"], "field": first["field"], "errors": found[:50]},
        )
    return events


def used_events(site: str, events: Sequence[MoodleEvent]) -> tuple[list[tuple[str, Message]], int]:
    """(event id, message) of each event in `USED`, in order, and how many events are ignored."""
    used = [moodle_message(site, event) for event in events if event.eventname in USED]
    return used, len(events) - len(used)


class Claims:
    """Event ids some request is publishing right now, so that concurrent requests carrying the same
    event (a retry while the first attempt still waits for the broker, a redelivery in the next batch)
    publish it once. Event-loop only. The ledger does the same across time and processes."""

    def __init__(self, ledger: PublishedEvents) -> None:
        self.ledger = ledger
        self.inflight: dict[str, asyncio.Future[None]] = {}

    async def claim(self, ids: list[str], wait: float) -> set[str]:
        """Of `ids`, those not yet published, now claimed by the caller (who must `release` them).
        Ids another request is publishing are waited for first: published then, or to be claimed here
        if that request failed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            others = {self.inflight[i] for i in ids if i in self.inflight}
            if others:
                if loop.time() >= deadline:
                    raise WebhookRefused(
                        503,
                        "busy: other requests with the same events are still waiting "
                        "for the broker; nothing of this request was received, send it "
                        "again",
                        retry_after=RETRY_AFTER_BUSY,
                    )
                await asyncio.wait(others, timeout=deadline - loop.time())
                continue
            unseen = await asyncio.to_thread(self.ledger.unseen, ids) if ids else set()
            if any(i in self.inflight for i in unseen):  # claimed while we read the ledger
                continue
            for event_id in unseen:
                self.inflight[event_id] = loop.create_future()
            return unseen

    def release(self, ids: set[str]) -> None:
        for event_id in ids:
            waiter = self.inflight.pop(event_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


# --- Kafka -------------------------------------------------------------------------------------------


class AckedPublisher:
    """The webhook's `moodle.events` producer (bounded, built on first use), shared by the requests.

    `publish` returns once the broker acknowledged every message (acks=all) or raises
    `BrokerUnavailable` by the request's deadline. Only `send()` (which may block on metadata or a full
    buffer) runs in a thread; the acks are awaited on the event loop, so no thread waits on them.
    """

    def __init__(self, settings: Settings, timeout: float = ACK_TIMEOUT) -> None:
        self.topic = settings.topic(MOODLE_EVENTS)
        self.timeout = timeout
        self._slot = ProducerSlot(settings, "ebackpack-gateway-webhook", timeout)

    async def publish(self, messages: list[Message], deadline: float) -> None:
        """By `deadline` (`time.monotonic()`) or `timeout` seconds from now, whichever comes first."""
        if not messages:
            return
        loop = asyncio.get_running_loop()
        deadline = min(deadline, time.monotonic() + self.timeout)
        records = [(self.topic, key, value) for key, value in messages]
        try:
            futures = await asyncio.to_thread(send_all, self._slot, records, deadline)
            acks = [_awaitable(loop, future) for future in futures]
            done = await asyncio.wait_for(
                asyncio.gather(*acks, return_exceptions=True), max(deadline - time.monotonic(), 0.0)
            )
        except TimeoutError as exc:
            self._slot.reset()
            raise BrokerUnavailable(f"no acknowledgement from the broker within {self.timeout:g} s") from exc
        except Exception as exc:  # KafkaError, or a producer another request's failure just closed
            self._slot.reset()
            raise BrokerUnavailable(f"the broker could not be reached: {type(exc).__name__}: {exc}") from exc
        failures = [result for result in done if isinstance(result, BaseException)]
        if failures:
            self._slot.reset()
            raise BrokerUnavailable(
                f"{len(failures)} of {len(messages)} messages not acknowledged by the broker: {failures[0]}"
            )

    def close(self) -> None:
        self._slot.close()


def _awaitable(loop: asyncio.AbstractEventLoop, future: FutureRecordMetadata) -> asyncio.Future[Any]:
    """A kafka-python future (settled on the producer's I/O thread) as an asyncio future."""
    waiter: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Any, failed: bool) -> None:
        if waiter.done():  # cancelled: the request already answered 503
            return
        if failed:
            waiter.set_exception(outcome if isinstance(outcome, BaseException) else KafkaError(outcome))
        else:
            waiter.set_result(outcome)

    def threadsafe(outcome: Any, failed: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome, failed)

    future.add_callback(threadsafe, failed=False)
    future.add_errback(threadsafe, failed=True)
    return waiter


# --- the app -----------------------------------------------------------------------------------------


@dataclass
class Pending:
    """Requests in flight; checked and changed on the event loop only, so a plain counter suffices."""

    limit: int
    now: int = 0


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise WebhookRefused(413, f"body of {int(declared)} bytes; at most {MAX_BODY}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise WebhookRefused(413, f"body over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class Step:
    """What a request is doing now, for the 503 of a request cut at its deadline."""

    doing: str = "reading the request"

    def tell(self, doing: str) -> None:
        self.doing = doing


def create_app(
    settings: Settings,
    *,
    ack_timeout: float = ACK_TIMEOUT,
    deadline: float = REQUEST_DEADLINE,
    sessions: sessionmaker[Session] | None = None,
) -> FastAPI:
    """The webhook app. The database must be migrated and the topics created (`bootstrap.prepare`).

    `deadline`: seconds from a request's arrival to its answer; `ack_timeout`: the most the broker may
    take to acknowledge (and each producer wait), within that deadline.
    """
    ledger = PublishedEvents(sessions or build(settings).sessions)
    publisher = AckedPublisher(settings, ack_timeout)
    pending = Pending(max(settings.gateway_max_pending, 1))
    claims = Claims(ledger)
    profiles = ProfileSync.for_settings(settings)
    secret = settings.gateway_secret.get_secret_value() if settings.gateway_secret else None
    site = settings.site_id

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(publisher.close)
        if profiles is not None:
            await asyncio.to_thread(profiles.close)

    app = FastAPI(
        title="e-Backpack gateway webhook", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "service": "ebackpack-gateway",
            "site": site,
            "configured": bool(secret),
            "pending": pending.now,
            "max_pending": pending.limit,
        }

    @app.post(PATH)
    async def receive(request: Request) -> JSONResponse:
        if pending.now >= pending.limit:
            log.warning("webhook: %d requests pending, refusing one (503)", pending.now)
            return WebhookRefused(
                503,
                f"busy: {pending.now} requests are waiting for the broker; nothing "
                "of this request was received, send it again",
                retry_after=RETRY_AFTER_BUSY,
            ).response()
        pending.now += 1
        step = Step()
        try:
            try:
                answer = await asyncio.wait_for(handle(request, step, time.monotonic() + deadline), deadline)
            except TimeoutError as exc:
                raise WebhookRefused(
                    503,
                    f"not done within {deadline:g} s while {step.doing}; nothing of "
                    "this request counts as received, send it again",
                    retry_after=RETRY_AFTER_BROKER,
                ) from exc
            return JSONResponse(answer, status_code=202)
        except WebhookRefused as refused:
            if refused.status >= 500:
                log.warning("webhook: %s", refused)
            else:
                log.info("webhook refused: %s", refused)
            return refused.response()
        finally:
            pending.now -= 1

    async def handle(request: Request, step: Step, until: float) -> dict[str, int]:
        """The request's answer by `until` (`time.monotonic()`); the caller cuts it there too."""
        headers = request.headers
        if not secret:  # before reading anything
            verify_signature(secret, None, b"", None, time.time(), settings.gateway_replay_seconds)
        sender = headers.get(SITE_HEADER)
        if sender is None:
            raise WebhookRefused(401, f"missing {SITE_HEADER} header (the site id)")
        body = await read_body(request)
        verify_signature(
            secret,
            headers.get(TIMESTAMP_HEADER),
            body,
            headers.get(SIGNATURE_HEADER),
            time.time(),
            settings.gateway_replay_seconds,
        )
        if sender != site:
            raise WebhookRefused(
                403, f"this gateway receives the events of site {site!r}, not {sender[:200]!r}"
            )
        step.doing = "parsing the events"
        events = await asyncio.to_thread(parse_events, body, site)  # up to ~0.5 s for a hostile 1 MiB body
        if profiles is not None:  # profiles first, completion dates filled in (see gateway/profiles.py)
            try:
                events = await asyncio.to_thread(profiles.prepare, events, until, step.tell)
            except ProfilesUnavailable as exc:
                log.warning("webhook: profiles not read from Moodle: %s", exc)
                raise WebhookRefused(
                    503,
                    f"the learners' profiles could not be read from Moodle ({exc}); "
                    "nothing of this request was received, send it again",
                    retry_after=RETRY_AFTER_BROKER,
                ) from exc
            except BrokerUnavailable as exc:
                log.warning("webhook: profiles not published: %s", exc)
                raise WebhookRefused(
                    503,
                    f"the broker is unavailable: {exc}. Nothing was lost: none of "
                    "these events counts as received, send the same request again",
                    retry_after=RETRY_AFTER_BROKER,
                ) from exc
            except Exception as exc:  # unforeseen: still an answer the plugin retries; the log has the cause
                log.exception("webhook: profiles not prepared")
                raise WebhookRefused(
                    503,
                    "the learners' profiles could not be prepared "
                    f"({type(exc).__name__}); nothing of this request was received, send it "
                    "again",
                    retry_after=RETRY_AFTER_BROKER,
                ) from exc
        used, ignored = used_events(site, events)
        step.doing = "looking up the events in the gateway's ledger"
        try:
            mine = await claims.claim(
                list(dict.fromkeys(event_id for event_id, _ in used)), until - time.monotonic()
            )
        except SQLAlchemyError as exc:
            log.exception("webhook: ledger not readable")
            raise WebhookRefused(
                503,
                "the gateway's database is not reachable; nothing of this request "
                "was received, send it again",
                retry_after=RETRY_AFTER_BROKER,
            ) from exc
        try:  # others waiting for these ids look into the ledger again once they are released
            todo = plan(used, ignored, mine)
            step.doing = "waiting for the broker to acknowledge the events"
            try:
                await publisher.publish(todo.messages, until)
            except BrokerUnavailable as exc:
                raise WebhookRefused(
                    503,
                    f"the broker is unavailable: {exc}. Nothing was lost: none of these events counts "
                    "as received, send the same request again",
                    retry_after=RETRY_AFTER_BROKER,
                ) from exc
            step.doing = "recording the published events in the gateway's ledger"
            if todo.ids:
                try:
                    await asyncio.to_thread(ledger.record, site, SOURCE, todo.ids)
                except SQLAlchemyError:  # on the topic already: at worst published again later (idempotent)
                    log.exception("webhook: %d published events not recorded in the ledger", len(todo.ids))
        finally:
            claims.release(mine)
        return {"accepted": len(todo.ids), "duplicates": todo.duplicates, "ignored": todo.ignored}

    # The request counter; GET /metrics here only in the embedded stack, else on EBACKPACK_METRICS_PORT.
    install_http_metrics(app, "gateway", public=settings.embedded)
    return app


def from_environment() -> FastAPI:
    """`uvicorn --factory services.gateway.webhook:from_environment`"""
    return create_app(get_settings())
