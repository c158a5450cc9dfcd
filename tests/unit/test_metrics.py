"""Metrics: the dashboard and Prometheus config use what adapters/metrics.py defines, and the counters
move where the work happens (the consume loops, the renderer, the web apps)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from ebackpack.adapters import metrics
from ebackpack.config import Settings
from ebackpack.streaming.app import BatchOutcome, SentMessages, consume, consume_batches
from ebackpack.streaming.errors import InvalidMessage
from ebackpack.streaming.policy import RetryPolicy, SourceMessage
from schemas import DeadLetterMessage

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "ebackpack-dashboard.json"
PROMETHEUS = ROOT / "infra" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "infra" / "grafana" / "provisioning"
FAST = RetryPolicy(max_attempts=2, first_delay=0.001, max_delay=0.001)
METRIC = re.compile(r"\bebackpack_[a-z0-9_]+\b")


def value(name: str, **labels: str) -> float:
    return metrics.sample_value(name, labels)


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold theirs
    return found


# --- dashboard, Prometheus, provisioning ---------------------------------------------------------------


def test_every_dashboard_query_uses_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    exposed = metrics.exposed_names()
    used: set[str] = set()
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = set(METRIC.findall(target["expr"]))
            assert names or "up{" in target["expr"], f"panel {panel['title']!r}: {target['expr']}"
            unknown = names - exposed
            assert not unknown, f"panel {panel['title']!r} uses undefined metrics {sorted(unknown)}"
            used |= names
    for wanted in (
        "ebackpack_messages_in_total",
        "ebackpack_messages_out_total",
        "ebackpack_processing_seconds_bucket",
        "ebackpack_dead_letters_total",
        "ebackpack_consumer_lag",
        "ebackpack_renders_total",
        "ebackpack_imports_total",
        "ebackpack_http_requests_total",
    ):
        assert wanted in used, f"no panel shows {wanted}"


def test_dashboard_panels_do_not_overlap_and_have_unique_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        mine = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine


def test_prometheus_scrapes_every_service_and_grafana_provisioning_points_at_it() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"issuer", "renderer", "importer", "notifier", "backpack", "webhook"} <= set(jobs)
    for worker in ("issuer", "renderer", "importer", "notifier"):
        assert jobs[worker]["dns_sd_configs"][0] == {
            "names": [worker],
            "type": "A",
            "port": 9100,
            "refresh_interval": "30s",
        }
    # The web apps' metrics port (compose: EBACKPACK_METRICS_PORT), not their public 8000 / 8010.
    assert jobs["backpack"]["static_configs"][0]["targets"] == ["backpack:9100"]
    assert jobs["webhook"]["static_configs"][0]["targets"] == ["webhook:9100"]
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    dashboard = json.loads(DASHBOARD.read_text())
    assert {t["datasource"]["uid"] for p in panels(dashboard) for t in p.get("targets", [])} <= uids
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "ebackpack.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"  # docker-compose.yml


def test_metric_names_and_help_texts() -> None:
    for metric in metrics.ALL:
        for family in metric.describe():
            assert family.name.startswith("ebackpack_")
            assert len(family.documentation) > 20, family.name
    assert {
        "ebackpack_messages_in_total",
        "ebackpack_processing_seconds_bucket",
        "ebackpack_consumer_lag",
        "ebackpack_imports_total",
    } <= metrics.exposed_names()


# --- the consume loops ---------------------------------------------------------------------------------


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeEvent:
    message: FakeMessage
    key: bytes | None
    value: bytes


class FakeStream:
    """What `consume` and `consume_batches` use of a faust stream."""

    def __init__(self, events: list[FakeEvent]) -> None:
        self._events = events

    async def events(self) -> AsyncIterator[FakeEvent]:
        for event in self._events:
            yield event

    async def take_events(self, size: int, within: float) -> AsyncIterator[list[FakeEvent]]:
        for start in range(0, len(self._events), size):
            yield self._events[start : start + size]


class FakeTopic:
    """A dead-letter topic: `send` returns a future the broker 'acknowledged' already."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None, value: bytes, force: bool) -> asyncio.Future[None]:
        self.sent.append((key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def events(topic: str) -> list[FakeEvent]:
    return [
        FakeEvent(FakeMessage(topic, 0, 0), b"1", b'{"good": 1}'),
        FakeEvent(FakeMessage(topic, 0, 1), b"2", b"poison"),
        FakeEvent(FakeMessage(topic, 1, 0), b"3", b'{"good": 2}'),
    ]


async def handle(message: SourceMessage) -> str:
    if message.value == b"poison":
        raise InvalidMessage("not JSON")
    return "ok"


def test_consume_counts_messages_in_processing_time_and_dead_letters_by_error_type() -> None:
    consumer, topic, dlq = f"c{uuid.uuid4().hex[:6]}", "moodle.events", FakeTopic()

    async def run() -> list[Any]:
        return [
            r
            async for r in consume(
                FakeStream(events(topic)),
                handle,
                dlq=dlq,  # type: ignore[arg-type]
                consumer=consumer,
                policy=FAST,
            )
        ]

    assert asyncio.run(run()) == ["ok", None, "ok"]
    assert value("ebackpack_messages_in_total", topic=topic, consumer=consumer) == 3
    assert value("ebackpack_processing_seconds_count", consumer=consumer) == 3
    assert value("ebackpack_dead_letters_total", consumer=consumer, reason="InvalidMessage") == 1
    assert len(dlq.sent) == 1
    assert DeadLetterMessage.model_validate_json(dlq.sent[0][1]).data.error_type == "InvalidMessage"


def test_consume_batches_counts_each_message_and_each_batch() -> None:
    consumer, topic, dlq = f"c{uuid.uuid4().hex[:6]}", "moodle.events", FakeTopic()

    async def handle_batch(messages: list[SourceMessage]) -> BatchOutcome:
        return BatchOutcome(
            poison=[(i, InvalidMessage("bad")) for i, m in enumerate(messages) if m.value == b"poison"]
        )

    async def run() -> list[int]:
        return [
            n
            async for n in consume_batches(
                FakeStream(events(topic)),
                handle_batch,
                dlq=dlq,
                consumer=consumer,
                size=2,
                within=0.01,
                policy=FAST,
            )
        ]

    assert asyncio.run(run()) == [2, 1]
    assert value("ebackpack_messages_in_total", topic=topic, consumer=consumer) == 3
    assert value("ebackpack_batch_seconds_count", consumer=consumer) == 2
    assert value("ebackpack_processing_seconds_count", consumer=consumer) == 3
    assert value("ebackpack_dead_letters_total", consumer=consumer, reason="InvalidMessage") == 1


def test_a_batch_that_fails_as_a_whole_still_counts_each_message_once() -> None:
    consumer, topic, dlq = f"c{uuid.uuid4().hex[:6]}", "moodle.events", FakeTopic()

    async def broken_batch(messages: list[SourceMessage]) -> BatchOutcome:
        if len(messages) > 1:
            raise RuntimeError("bug in the batch path")
        await handle(messages[0])  # one by one, the messages' own outcome
        return BatchOutcome()

    async def run() -> list[int]:
        return [
            n
            async for n in consume_batches(
                FakeStream(events(topic)),
                broken_batch,
                dlq=dlq,
                consumer=consumer,
                size=10,
                within=0.01,
                policy=FAST,
            )
        ]

    assert asyncio.run(run()) == [3]
    assert value("ebackpack_messages_in_total", topic=topic, consumer=consumer) == 3
    assert value("ebackpack_dead_letters_total", consumer=consumer, reason="InvalidMessage") == 1


def test_acknowledged_sends_are_counted_per_topic() -> None:
    topic = f"t{uuid.uuid4().hex[:6]}.credentials"

    @dataclass
    class Metadata:
        topic: str

    sensor = SentMessages()
    for _ in range(2):
        sensor.on_send_completed(None, None, Metadata(topic))  # type: ignore[arg-type]
    assert value("ebackpack_messages_out_total", topic=topic) == 2


def test_consumer_lag_drops_partitions_no_longer_reported() -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    metrics.set_consumer_lag(group, {("moodle.events", 0): 5, ("moodle.events", 1): 0})
    assert value("ebackpack_consumer_lag", group=group, topic="moodle.events", partition="0") == 5
    metrics.set_consumer_lag(group, {("moodle.events", 1): 2})
    assert (
        metrics.REGISTRY.get_sample_value(
            "ebackpack_consumer_lag", {"group": group, "topic": "moodle.events", "partition": "0"}
        )
        is None
    )
    assert value("ebackpack_consumer_lag", group=group, topic="moodle.events", partition="1") == 2
    assert value("ebackpack_consumer_lag_sampled_timestamp_seconds", group=group) > 0


def test_a_failed_render_attempt_is_counted() -> None:
    from services.renderer.service import RendererService

    before = value("ebackpack_renders_total", outcome="failed")
    service = RendererService(None, None, None, Settings())  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        service.handle(b"not a render request")
    assert value("ebackpack_renders_total", outcome="failed") == before + 1


# --- serving -------------------------------------------------------------------------------------------


def test_web_apps_count_requests_by_route_template_and_serve_metrics() -> None:
    app = FastAPI()
    name = f"app{uuid.uuid4().hex[:6]}"

    @app.get("/verify/{code}")
    def verify(code: str) -> dict[str, str]:
        return {"code": code}

    app.mount("/static", StaticFiles(directory=Path(__file__).parent), name="static")
    metrics.install_http_metrics(app, name)
    client = TestClient(app)
    for code in ("A1", "B2"):
        assert client.get(f"/verify/{code}").status_code == 200
    assert client.get("/nowhere").status_code == 404
    assert client.get(f"/static/{Path(__file__).name}").status_code == 200
    assert (
        value("ebackpack_http_requests_total", app=name, route="/static/{path}", method="GET", status="200")
        == 1
    )
    assert (
        value("ebackpack_http_requests_total", app=name, route="/verify/{code}", method="GET", status="200")
        == 2
    )
    assert (
        value("ebackpack_http_requests_total", app=name, route="(unmatched)", method="GET", status="404") == 1
    )
    scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    line = f'ebackpack_http_requests_total{{app="{name}",method="GET",route="/verify/{{code}}",status="200"}}'
    assert f"{line} 2.0" in scraped.text.splitlines()


def test_the_gateway_webhook_serves_metrics(tmp_path: Path) -> None:
    from services.gateway.webhook import create_app

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = TestClient(create_app(settings))
    assert client.get("/healthz").status_code == 200
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert (
        'ebackpack_http_requests_total{app="gateway",method="GET",route="/healthz",status="200"}'
        in scraped.text
    )


def test_worker_metrics_are_served_on_the_configured_port_once() -> None:
    assert metrics.serve_worker_metrics(Settings(metrics_port=0)) is False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(metrics_port=port)
    assert metrics.serve_worker_metrics(settings) is True
    assert metrics.serve_worker_metrics(settings) is True  # a second call does not bind again
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# HELP ebackpack_messages_in_total" in text
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert metrics.serve_worker_metrics(Settings(metrics_port=taken.getsockname()[1])) is False
