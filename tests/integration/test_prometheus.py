"""The Prometheus config, its alerting rules and the Grafana dashboard's queries, on Debian's `prometheus`
and `promtool` (`make system-deps`).

promtool checks the config as docker-compose.yml mounts it and the rules, and runs the rules' unit tests
(infra/prometheus/alerts_test.yml). Then a real pipeline runs (the test stack's broker and S3 server, the
four workers, the backpack and the gateway webhook, each with its own metrics port), a prometheus process
of the test's own scrapes it every 2 s under the job names of prometheus.yml and evaluates the same
rules, and every query of every dashboard panel must return data once Moodle events, poison, a failed
render, an upload, parked completions and HTTP requests (5xx included) went through.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kafka import KafkaProducer
from pydantic import SecretStr

from ebackpack.bootstrap import prepare
from ebackpack.config import Settings, settings_env
from ebackpack.dev.sample_data import default_dataset
from ebackpack.dev.workers import Worker
from ebackpack.streaming.topics import RENDER_REQUESTS
from services.backpack.auth import issue_token
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from tests.builders import completion, stop_group
from tests.conftest import free_port, isolated, reserve_port
from tests.integration.test_webhook import headers, observed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
DASHBOARD = ROOT / "infra" / "grafana" / "ebackpack-dashboard.json"
WORKERS = ("issuer", "renderer", "importer", "notifier")
SCRAPE_INTERVAL = "2s"  # and rule evaluation: short, yet a slow /metrics answer on a busy machine is no gap
RATE_WINDOW = "1m"  # Grafana's $__rate_interval: 4 scrapes would do, a minute is safer under load
START_DEADLINE = 180.0  # seconds for every process to serve /metrics; two cores shared with other runs
DATA_DEADLINE = 240.0  # seconds for every panel to have data
LIFETIME = 900  # seconds: the test's prometheus exits by itself even if the test run is killed
POISON = b'{"not": "a moodle event"'
UNKNOWN_LEARNER = 99001  # no profile: the issuer parks the completion


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package `prometheus`: see `make system-deps`)")
    return path


def production_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return config


def rule_files() -> list[Path]:
    """The rule files prometheus.yml loads, resolved as Prometheus does: beside the config."""
    return [CONFIG.parent / name for name in production_config().get("rule_files", [])]


def alert_names() -> set[str]:
    return {
        rule["alert"]
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# --- promtool -------------------------------------------------------------------------------------------


def test_promtool_accepts_the_config_as_compose_mounts_it(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "prometheus"  # docker-compose.yml: both files in /etc/prometheus
    etc.mkdir(parents=True)
    for path in (CONFIG, *rule_files()):
        shutil.copy(path, etc / path.name)
    checked = promtool("check", "config", "prometheus.yml", cwd=etc)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert rule_files(), "prometheus.yml loads no alerting rules"
    assert f"SUCCESS: {len(rule_files())} rule files found" in checked.stdout + checked.stderr


def test_the_alerting_rules_are_valid_and_pass_their_unit_tests() -> None:
    names = alert_names()
    assert {
        "EbackpackConsumerLagHigh",
        "EbackpackDeadLetters",
        "EbackpackConsumerPaused",
        "EbackpackRendersFailing",
        "EbackpackMessagesParked",
        "EbackpackTargetDown",
    } <= names
    checked = promtool("check", "rules", *map(str, rule_files()), cwd=PROMETHEUS_DIR)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(names)} rules found" in checked.stdout
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=PROMETHEUS_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested_names = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested_names == names, "an alert without promtool test cases"
    for name in names:  # each alert both fires and stays silent somewhere in the cases
        outcomes = {
            bool(case["exp_alerts"])
            for test in tests
            for case in test["alert_rule_test"]
            if case["alertname"] == name
        }
        assert outcomes == {True, False}, f"{name} is not tested both firing and silent"


def test_the_rule_tests_notice_alerts_that_fire_too_early(tmp_path: Path) -> None:
    """The unit tests can fail: without their `for:` durations the same rules fail them."""
    for path in rule_files():
        text = re.sub(r"^\s+for: .*\n", "", path.read_text(), flags=re.MULTILINE)
        (tmp_path / path.name).write_text(text)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr


# --- a running pipeline -----------------------------------------------------------------------------------


def cli() -> list[str]:
    script = Path(sys.executable).with_name("ebackpack")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ebackpack.cli"]


def environment(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")} | settings_env(settings)


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


@dataclass
class Pipeline:
    settings: Settings
    webhook_url: str
    prometheus_url: str
    logs: Path
    metrics_ports: dict[str, int]  # job name (prometheus.yml) -> port of its /metrics
    processes: dict[str, Callable[[], bool]] = field(default_factory=dict)  # name -> still running?

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def api(self, path: str) -> Any:
        body = httpx.get(f"{self.prometheus_url}/api/v1/{path}", timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def check_running(self) -> None:
        dead = [name for name, running in self.processes.items() if not running()]
        assert not dead, f"{', '.join(dead)} stopped; logs in {self.logs}"


def poll(pipeline: Pipeline, check: Callable[[], Any], seconds: float, what: str) -> Any:
    """`check()` until it returns something truthy, failing at once if a process of the pipeline died."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        pipeline.check_running()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(1.0)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def scrape_config(ports: dict[str, int], rules: list[Path]) -> dict[str, Any]:
    """prometheus.yml's jobs (names and paths as the dashboard filters on them) with static targets: the
    test's processes instead of compose's DNS names; every 2 s; the same rule files."""
    production = production_config()
    jobs = []
    for job in production["scrape_configs"]:
        name = job["job_name"]
        jobs.append(
            {
                "job_name": name,
                "metrics_path": job.get("metrics_path", "/metrics"),
                "static_configs": [{"targets": [f"127.0.0.1:{ports[name]}"]}],
            }
        )
    assert {job["job_name"] for job in jobs} == set(ports), "prometheus.yml's jobs are not the test's"
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": [str(path) for path in rules],
        "scrape_configs": jobs,
    }


@pytest.fixture(scope="module")
def pipeline(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    prometheus = binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    web = reserve_port()
    settings = isolated(stack_settings, tmp, web).model_copy(
        update={
            "gateway_secret": SecretStr(secrets.token_urlsafe(48)),
            # OpenID Connect half configured: its login route answers 503, for the dashboard's 5xx panels.
            "oidc_issuer": "https://idp.invalid",
        }
    )
    web.close()  # the backpack's own server takes the port
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in (*WORKERS, "backpack", "webhook")}
    webhook_port = free_port()
    workers = [Worker(name, settings.model_copy(update={"metrics_port": ports[name]})) for name in WORKERS]
    web_apps: dict[str, subprocess.Popen[bytes]] = {}
    started = Pipeline(settings, f"http://127.0.0.1:{webhook_port}", "", logs, ports)
    try:
        for worker in workers:
            worker.start()
            started.processes[worker.name] = lambda w=worker: w.running  # type: ignore[misc]
        for name, args in (
            ("backpack", ["serve", "--port", str(settings.http_port)]),
            ("webhook", ["gateway", "webhook", "--port", str(webhook_port)]),
        ):
            with (logs / f"{name}.log").open("wb") as out:
                env = environment(settings.model_copy(update={"metrics_port": ports[name]}))
                web_apps[name] = subprocess.Popen(
                    [*cli(), *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            started.processes[name] = lambda p=web_apps[name]: p.poll() is None  # type: ignore[misc]
        for name, port in ports.items():
            poll(
                started,
                lambda p=port: answers(f"http://127.0.0.1:{p}/metrics"),
                START_DEADLINE,
                f"{name} to serve /metrics",
            )

        config = tmp / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(ports, rule_files()), sort_keys=False))
        listen = free_port()
        with (logs / "prometheus.log").open("wb") as out:
            web_apps["prometheus"] = subprocess.Popen(
                [
                    "timeout",
                    str(LIFETIME),
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{listen}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started.processes["prometheus"] = lambda: web_apps["prometheus"].poll() is None
        started.prometheus_url = f"http://127.0.0.1:{listen}"
        poll(started, lambda: answers(f"{started.prometheus_url}/-/ready"), 60, "prometheus to be ready")
        drive(started)
        yield started
    finally:
        for proc in web_apps.values():
            stop_group(proc)
        for worker in workers:
            worker.stop()


def drive(pipeline: Pipeline) -> None:
    """What the dashboard shows: events (the sample data's, and a completion through the webhook whose
    learner has no profile: parked), poison for the issuer and the renderer (dead letters, a failed
    render), an upload the importer rejects, and requests to both web apps (a 404, a 503, a 401)."""
    settings = pipeline.settings
    publisher = MoodleEventPublisher(settings)
    publisher.publish(default_dataset().messages)  # 3 of them malformed: dead letters of the issuer
    publisher.close()
    event = observed("course_completed.moodle51") | {"relateduserid": UNKNOWN_LEARNER}
    body = json.dumps({"site": settings.site_id, "events": [event]}).encode()
    secret = settings.gateway_secret.get_secret_value() if settings.gateway_secret else ""
    webhook = httpx.post(
        f"{pipeline.webhook_url}/moodle/events",
        content=body,
        headers=headers(body, secret=secret, site=settings.site_id),
        timeout=30,
    )
    assert webhook.status_code == 202, webhook.text
    forged = httpx.post(
        f"{pipeline.webhook_url}/moodle/events",
        content=body,
        headers=headers(body, secret="not-the-secret", site=settings.site_id),
        timeout=30,
    )
    assert forged.status_code == 401
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.topic(RENDER_REQUESTS), b"not a render request").get(30)
    producer.close()
    with httpx.Client(base_url=settings.public_url, timeout=30) as backpack:
        upload = backpack.post(
            "/api/attestations",
            files={"file": ("note.json", b'{"not": "a credential"}')},
            headers={"Authorization": f"Bearer {issue_token(settings, 5722)}"},
        )
        assert upload.status_code == 202, upload.text
        assert backpack.get("/healthz").status_code == 200
        assert backpack.get("/verify/AAAA-BBBB-CCCC").status_code == 404
        assert backpack.get("/login/oidc").status_code == 503


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every panel target, Grafana's interval variables replaced."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", RATE_WINDOW).replace("$__interval", RATE_WINDOW)
            assert "$" not in expr, f"{panel['title']}: a Grafana variable the test does not know: {expr}"
            queries.append((panel["title"], expr))
    return queries


def test_every_dashboard_panel_has_data_from_a_running_pipeline(pipeline: Pipeline) -> None:
    queries = panel_queries()
    assert len(queries) >= 20

    seen_up: set[str] = set()

    def every_job_up() -> bool:
        seen_up.update(s["metric"]["job"] for s in pipeline.query("up == 1"))
        return seen_up == set(pipeline.metrics_ports)

    poll(pipeline, every_job_up, 60, "every job of prometheus.yml to be up")
    missing = list(queries)
    deadline = time.monotonic() + DATA_DEADLINE
    while missing and time.monotonic() < deadline:
        missing = [(title, expr) for title, expr in missing if not pipeline.query(expr)]
        if missing:
            pipeline.check_running()
            time.sleep(2.0)
    assert not missing, "panels without data after {:.0f} s:\n{}\nlogs in {}".format(
        DATA_DEADLINE, "\n".join(f"- {title}: {expr}" for title, expr in missing), pipeline.logs
    )
    # The counts the stat panels show are what went through.
    assert pipeline.query('sum(ebackpack_renders_total{outcome="failed"})')[0]["value"][1] != "0"
    statuses = {s["metric"]["status"] for s in pipeline.query("ebackpack_http_requests_total")}
    assert {"202", "200", "401", "404", "503"} <= statuses


def test_the_rules_evaluate_on_real_metrics_and_a_new_dead_letter_fires_its_alert(pipeline: Pipeline) -> None:
    def rules() -> dict[str, dict[str, Any]]:
        return {rule["name"]: rule for group in pipeline.api("rules")["groups"] for rule in group["rules"]}

    loaded = rules()
    assert set(loaded) == alert_names()
    # The issuer's dead-letter counter exists (the sample data's malformed events); one more dead letter
    # is an increase the alert must see.
    poll(
        pipeline,
        lambda: pipeline.query('ebackpack_dead_letters_total{job="issuer"}'),
        DATA_DEADLINE,
        "the issuer's dead letters in prometheus",
    )
    publisher = MoodleEventPublisher(pipeline.settings)
    publisher.publish([(b"5722", POISON), (b"5722", completion(5722, 42, datetime.now(UTC)))])
    publisher.close()

    def firing() -> list[dict[str, Any]]:
        return [
            alert
            for alert in pipeline.api("alerts")["alerts"]
            if alert["labels"]["alertname"] == "EbackpackDeadLetters"
            and alert["state"] == "firing"
            and alert["labels"].get("consumer") == "issuer"
        ]

    alert = poll(pipeline, firing, DATA_DEADLINE, "EbackpackDeadLetters to fire for the issuer")[0]
    assert alert["labels"]["reason"] == "InvalidMessage" and alert["labels"]["job"] == "issuer"
    unhealthy = {name: rule.get("lastError") for name, rule in rules().items() if rule["health"] != "ok"}
    assert not unhealthy, f"rules that fail on real metrics: {unhealthy}"
