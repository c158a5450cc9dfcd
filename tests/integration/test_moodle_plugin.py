"""The Moodle plugin `local_ebackpack` (infra/moodle/local_ebackpack) against the real webhook receiver.

Real components: PHP 8.2 CLI running the plugin's own code (`classes/client.php` alone, and the observer and
adhoc task on faked Moodle APIs, tests/php/moodle/), the gateway's webhook (`services.gateway.webhook`)
served by uvicorn, the embedded Tansu broker and SQLite. What Moodle itself would do around the plugin
(cron, the task manager's reschedule, lib/filelib.php's `\\curl`) is faked in tests/php/moodle/.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS
from services.gateway.webhook import create_app, sign
from tests.conftest import MOODLE_FIXTURES, require_tool, reserve_port
from tests.http_stub import LoopbackServer, QuietHandler, respond

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "infra" / "moodle" / "local_ebackpack"
PHP_DIR = ROOT / "tests" / "php"
COMPLETED_FIXTURE = MOODLE_FIXTURES / "observer-course_completed.moodle51.json"
DELETED_FIXTURE = MOODLE_FIXTURES / "observer-user_deleted.json"
REAL_44 = MOODLE_FIXTURES / "real-4.4"  # what the plugin sent from a real Moodle 4.4.2 site
# Fields of get_data() that say what kind of event it is and where, never whom or when: no personal data.
STRUCTURAL = {
    "eventname",
    "component",
    "action",
    "target",
    "objecttable",
    "crud",
    "edulevel",
    "contextid",
    "contextlevel",
    "anonymous",
}
MOODLE_44_ATTEMPTS = 12  # \core\task\adhoc_task's attempts in Moodle 4.4 (task_adhoc.attemptsavailable)
SITE = "moodle.example.org"
SECRET = "correct horse battery staple / zażółć"  # non-ASCII and a slash: UTF-8 on both sides

PLUGIN_FILES = [
    "version.php",
    "settings.php",
    "README.md",
    "db/events.php",
    "classes/client.php",
    "classes/observer.php",
    "classes/task/post_event.php",
    "classes/privacy/provider.php",
    "lang/en/local_ebackpack.php",
    "lang/pl/local_ebackpack.php",
]


# --- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def php() -> str:
    return require_tool("php")


def run_php(
    php: str,
    script: str,
    *args: str,
    stdin: Any = None,
    code: str | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """Run a PHP script of tests/php (or `code` with -r) and decode the JSON it prints."""
    command = [php, "-r", code] if code is not None else [php, str(PHP_DIR / script), *args]
    done = subprocess.run(
        command,
        input=None if stdin is None else json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, f"{command[:3]} failed ({done.returncode}): {done.stderr}{done.stdout}"
    assert "Warning" not in done.stderr and "Deprecated" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def call(php: str, *calls: tuple[str, list[Any]]) -> list[Any]:
    """Results of local_ebackpack\\client's static methods, called in one PHP process."""
    return run_php(php, "client_call.php", stdin=[{"method": m, "args": a} for m, a in calls])


def post_fixture(
    php: str,
    url: str,
    fixture: Path,
    *,
    secret: str = SECRET,
    site: str = SITE,
    transport: str = "stream",
    timestamp: int | None = None,
) -> dict[str, Any]:
    args = [
        f"--url={url}",
        f"--secret={secret}",
        f"--site={site}",
        f"--fixture={fixture}",
        f"--transport={transport}",
    ]
    if timestamp is not None:
        args.append(f"--timestamp={timestamp}")
    return run_php(php, "post_fixture.php", *args)


def run_task(
    php: str,
    event: dict[str, Any],
    url: str,
    *,
    secret: str = SECRET,
    site: str = SITE,
    faildelay: int = 0,
    attempts: int | None = None,
    mode: str = "execute",
    timecompleted: int | None = None,
) -> dict[str, Any]:
    """The plugin's adhoc task (or observer) run once, as Moodle's cron would run it."""
    return run_php(
        php,
        "run_task.php",
        stdin={
            "mode": mode,
            "event": event,
            "faildelay": faildelay,
            "attempts": attempts,
            **({"timecompleted": timecompleted} if timecompleted is not None else {}),
            "config": {"webhookurl": url, "secret": secret, "siteid": site},
            "wwwroot": f"https://{SITE}",
        },
    )


def load(fixture: Path) -> dict[str, Any]:
    return json.loads(fixture.read_text())


def canonical(site: str, events: list[dict[str, Any]]) -> str:
    """The body as the plugin must write it: compact JSON, slashes and Unicode unescaped."""
    return json.dumps({"site": site, "events": events}, separators=(",", ":"), ensure_ascii=False)


def moodle_records(settings: Settings) -> list[tuple[bytes, dict[str, Any]]]:
    records = read_topics(settings, [settings.topic(MOODLE_EVENTS)])
    return [(r.key, json.loads(r.value)) for r in records]


class Receiver:
    """The gateway's webhook app served by uvicorn in a thread, on a socket reserved for it."""

    def __init__(self, settings: Settings, sock: socket.socket):
        app = create_app(settings, ack_timeout=5.0)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.origin = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.origin}/healthz", timeout=1).json()
                if health.get("service") == "ebackpack-gateway":
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("webhook receiver did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def gateway(settings: Settings, web_socket: socket.socket) -> Iterator[tuple[Settings, str]]:
    """(settings, webhook origin): the receiver with the shared secret, on this test's topics and database."""
    configured = settings.model_copy(update={"gateway_secret": SecretStr(SECRET), "site_id": SITE})
    prepare(configured)
    with Receiver(configured, web_socket) as receiver:
        yield configured, receiver.origin


@contextmanager
def answering(status: int, headers: dict[str, str]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in gateway that answers every POST with `status` and `headers`; yields (origin, requests)."""
    seen: list[dict[str, str]] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(dict(self.headers))
            respond(self, status, json.dumps({"detail": "busy"}).encode(), headers=headers)

    with LoopbackServer(Handler) as server:
        yield server.url, seen


def closed_port_url() -> str:
    sock = reserve_port()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/moodle/events"


# --- the plugin's files ----------------------------------------------------------------------------------


def test_the_plugin_has_its_files_and_every_php_file_passes_lint(php: str) -> None:
    missing = [name for name in PLUGIN_FILES if not (PLUGIN / name).is_file()]
    assert not missing, f"missing plugin files: {missing}"
    failures = []
    for path in sorted([*PLUGIN.rglob("*.php"), *PHP_DIR.rglob("*.php")]):
        done = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            failures.append(f"{path.relative_to(ROOT)}: {(done.stderr or done.stdout).strip()}")
    assert not failures, "\n".join(failures)


def test_version_and_observers_follow_moodle_conventions(php: str) -> None:
    plugin = run_php(
        php,
        "",
        code=(
            "define('MOODLE_INTERNAL', 1); define('MATURITY_BETA', 100); $plugin = new stdClass();"
            f"require '{PLUGIN}/version.php'; echo json_encode($plugin);"
        ),
    )
    assert plugin["component"] == "local_ebackpack"
    assert plugin["requires"] == 2022112800
    assert re.fullmatch(r"20\d{8}", str(plugin["version"]))
    assert plugin["maturity"] == 100 and plugin["release"]

    observers = run_php(
        php,
        "",
        code=(
            f"define('MOODLE_INTERNAL', 1); require '{PLUGIN}/db/events.php'; echo json_encode($observers);"
        ),
    )
    assert {o["eventname"] for o in observers} == {
        "\\core\\event\\course_completed",
        "\\core\\event\\user_deleted",
        "\\core\\event\\user_updated",
    }
    for observer in observers:
        assert observer["internal"] is False, observer  # only after the transaction commits
        assert observer["callback"] == "\\local_ebackpack\\observer::forward"


def test_every_string_the_plugin_uses_exists_in_english_and_polish(php: str) -> None:
    def keys(lang: str) -> set[str]:
        return set(
            run_php(
                php,
                "",
                code=(
                    "define('MOODLE_INTERNAL', 1); $string = []; "
                    f"require '{PLUGIN}/lang/{lang}/local_ebackpack.php';"
                    "echo json_encode(array_keys($string));"
                ),
            )
        )

    english, polish = keys("en"), keys("pl")
    assert english == polish, f"only in en: {english - polish}; only in pl: {polish - english}"
    source = "\n".join(p.read_text() for p in PLUGIN.rglob("*.php") if "/lang/" not in str(p))
    uses = r"(?:get_string|lang_string|moodle_exception)\('([\w:]+)', 'local_ebackpack'"
    used = set(re.findall(uses, source))
    used |= set(re.findall(r"'(privacy:metadata:[\w:]+)'", source))
    assert {"pluginname", "taskpostevent", "errorretry", "privacy:metadata:ebackpack"} <= used
    assert used <= english, f"strings used but not defined: {used - english}"


def test_the_privacy_provider_declares_what_goes_to_the_ebackpack(php: str) -> None:
    stubs = r"""
        namespace core_privacy\local\metadata {
            interface provider {}
            class collection {
                public array $links = [];
                public function add_external_location_link($name, array $fields, $summary = '') {
                    $this->links[] = [$name, $fields, $summary];
                    return $this;
                }
            }
        }
        namespace core_privacy\local\request {
            interface core_userlist_provider {}
            class contextlist {} class approved_contextlist {} class userlist {} class approved_userlist {}
        }
        namespace core_privacy\local\request\plugin { interface provider {} }
        namespace {
            require getenv('PROVIDER');
            use local_ebackpack\privacy\provider;
            $links = provider::get_metadata(new core_privacy\local\metadata\collection())->links;
            $contexts = provider::get_contexts_for_userid(5722);
            echo json_encode(['links' => $links, 'contexts' => get_class($contexts)]);
        }
    """
    result = run_php(php, "", code=stubs, env={"PROVIDER": str(PLUGIN / "classes/privacy/provider.php")})
    [[name, fields, summary]] = result["links"]
    assert name == "ebackpack" and summary == "privacy:metadata:ebackpack"
    assert {"userid", "relateduserid", "courseid", "other", "timecreated"} <= set(fields)
    sent = {key for path in REAL_44.glob("observer-*.json") for key in load(path)}
    assert "timecompleted" in sent  # the observer adds it to course_completed
    undeclared = sent - STRUCTURAL - set(fields)
    assert not undeclared, f"sent to the e-Backpack but not declared in the privacy metadata: {undeclared}"
    assert all(text == f"privacy:metadata:ebackpack:{field}" for field, text in fields.items())
    assert result["contexts"] == "core_privacy\\local\\request\\contextlist"  # nothing stored locally


# --- the pure contract functions, PHP only ---------------------------------------------------------------


def test_classify_answers(php: str) -> None:
    statuses = [202, 200, 401, 403, 422, 400, 413, 429, 500, 502, 503, 504, 404, 0]
    got = dict(zip(statuses, call(php, *[("classify", [s]) for s in statuses]), strict=True))
    assert got == {
        202: "accepted",
        200: "accepted",
        401: "refused",
        403: "refused",
        422: "refused",
        400: "refused",
        413: "refused",
        429: "retry",
        500: "retry",
        502: "retry",
        503: "retry",
        504: "retry",
        404: "retry",  # a misconfigured URL: kept until the setting is fixed
        0: "retry",  # no HTTP answer: DNS, connection refused, timeout
    }


def test_retry_after_and_the_backoff_plan(php: str) -> None:
    now = 1_763_989_200
    date = formatdate(now + 90, usegmt=True)
    results = call(
        php,
        ("retry_after", ["120", now]),
        ("retry_after", [date, now]),
        ("retry_after", ["soon", now]),
        ("retry_after", [None, now]),
        ("retry_after", ["999999", now]),
        ("header_value", [{"HTTP/1.1": "503 Service Unavailable", "retry-after": "10"}, "Retry-After"]),
        ("plan_retry", [0, None, None]),  # first failure: Moodle's 60 s
        ("plan_retry", [0, 600, None]),  # Retry-After beyond the backoff: 300 doubled = 600
        ("plan_retry", [60, 30, None]),  # Retry-After shorter than the backoff: backoff wins
        ("plan_retry", [43200, None, None]),  # capped at 24 h
        ("plan_retry", [240, 10**6, None]),  # Retry-After capped at 24 h too
        ("plan_retry", [480, None, 2]),  # Moodle 4.4+, attempts left: throw
        ("plan_retry", [480, 10, 1]),  # the last attempt: queue a fresh copy instead
        ("next_fail_delay", [0]),
        ("next_fail_delay", [60]),
        ("next_fail_delay", [86400]),
    )
    assert results[:6] == [120, 90, None, None, 86400, "10"]
    assert results[6:13] == [
        {"requeue": False, "faildelay": 0, "delay": 60},
        {"requeue": False, "faildelay": 300, "delay": 600},
        {"requeue": False, "faildelay": 60, "delay": 120},
        {"requeue": False, "faildelay": 43200, "delay": 86400},
        {"requeue": False, "faildelay": 43200, "delay": 86400},
        {"requeue": False, "faildelay": 480, "delay": 960},
        {"requeue": True, "faildelay": 960, "delay": 960},
    ]
    assert results[13:] == [60, 120, 86400]


def test_endpoint_and_default_site_id(php: str) -> None:
    assert call(
        php,
        ("endpoint", ["https://backpack.example.org"]),
        ("endpoint", ["https://backpack.example.org/"]),
        ("endpoint", [" https://backpack.example.org/hooks/moodle "]),
        ("default_site_id", ["https://Moodle.example.org/moodle"]),
        ("default_site_id", ["http://127.0.0.1:8080"]),
    ) == [
        "https://backpack.example.org/moodle/events",
        "https://backpack.example.org/moodle/events",
        "https://backpack.example.org/hooks/moodle",
        "moodle.example.org",
        "127.0.0.1:8080",
    ]


def test_php_body_and_signature_are_byte_identical_to_python(php: str) -> None:
    unusual = load(COMPLETED_FIXTURE) | {
        "eventname": "\\core\\event\\user_updated",
        "other": {"note": 'Zażółć gęślą jaźń / ½ "quoted" 😀'},
    }
    events = [load(COMPLETED_FIXTURE), load(DELETED_FIXTURE), unusual]
    timestamp = 1_763_989_200
    bodies = call(php, *[("payload", [SITE, [event]]) for event in events], ("payload", [SITE, events]))
    for body, batch in zip(bodies, [[e] for e in events] + [events], strict=True):
        assert body == canonical(SITE, batch)
    signatures = call(php, *[("sign", [SECRET, timestamp, body]) for body in bodies])
    assert signatures == [sign(SECRET, timestamp, body.encode()) for body in bodies]
    headers = call(php, ("headers", [SITE, SECRET, bodies[0], timestamp]))[0]
    assert headers == [
        "Content-Type: application/json",
        f"X-Ebackpack-Site: {SITE}",
        f"X-Ebackpack-Timestamp: {timestamp}",
        f"X-Ebackpack-Signature: {sign(SECRET, timestamp, bodies[0].encode())}",
    ]


# --- PHP against the real receiver -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["curl", "stream"])
def test_php_posts_a_completion_that_arrives_on_moodle_events(
    php: str, gateway: tuple[Settings, str], transport: str
) -> None:
    settings, origin = gateway
    modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.split()
    if transport == "curl" and "curl" not in modules:
        pytest.skip("PHP's curl extension is not installed (Debian: php-curl); the stream transport runs")
    answer = post_fixture(php, origin, COMPLETED_FIXTURE, transport=transport)
    assert answer["status"] == 202, answer
    assert answer["classify"] == "accepted"
    assert json.loads(answer["body"]) == {"accepted": 1, "duplicates": 0, "ignored": 0}
    # What PHP signed is what Python verifies, byte for byte.
    assert answer["payload"] == canonical(SITE, [load(COMPLETED_FIXTURE)])
    assert answer["signature"] == sign(SECRET, answer["timestamp"], answer["payload"].encode())

    records = moodle_records(settings)
    assert len(records) == 1
    key, message = records[0]
    assert key == b"5722"  # the learner, relateduserid
    assert message["source"] == f"moodle://{SITE}"
    assert message["data"]["eventname"] == "\\core\\event\\course_completed"
    assert (message["data"]["objectid"], message["data"]["relateduserid"], message["data"]["courseid"]) == (
        9132,
        5722,
        42,
    )

    again = post_fixture(php, origin, COMPLETED_FIXTURE, transport=transport)
    assert again["status"] == 202 and json.loads(again["body"])["duplicates"] == 1


def test_the_real_moodle_44_payloads_sent_by_the_plugins_code_are_accepted(
    php: str, gateway: tuple[Settings, str]
) -> None:
    settings, origin = gateway
    fixtures = sorted(REAL_44.glob("observer-*.json"))
    answers = [post_fixture(php, origin, path) for path in fixtures]
    assert [(a["status"], json.loads(a["body"])["accepted"]) for a in answers] == [(202, 1)] * len(fixtures)
    keys = sorted(key for key, _message in moodle_records(settings))
    assert keys == [b"5", b"5", b"6", b"6", b"6"]  # relateduserid, never the acting admin (userid 2)


def test_a_wrong_secret_or_a_malformed_event_is_refused(
    php: str, gateway: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, origin = gateway
    wrong = post_fixture(php, origin, COMPLETED_FIXTURE, secret="not the shared secret")
    assert wrong["status"] == 401, wrong
    assert wrong["classify"] == "refused"
    assert "signature does not match" in json.loads(wrong["body"])["detail"]

    stale = post_fixture(php, origin, COMPLETED_FIXTURE, timestamp=int(time.time()) - 3600)
    assert (stale["status"], stale["classify"]) == (401, "refused")

    other_site = post_fixture(php, origin, COMPLETED_FIXTURE, site="another.example.org")
    assert (other_site["status"], other_site["classify"]) == (403, "refused")

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({k: v for k, v in load(COMPLETED_FIXTURE).items() if k != "crud"}))
    malformed = post_fixture(php, origin, broken)
    assert (malformed["status"], malformed["classify"]) == (422, "refused"), malformed
    assert moodle_records(settings) == []


def test_the_plugins_task_delivers_and_gives_up_on_refusal(php: str, gateway: tuple[Settings, str]) -> None:
    settings, origin = gateway
    done = run_task(php, load(COMPLETED_FIXTURE), origin)  # an origin without a path: /moodle/events
    assert done["outcome"] == "completed", done
    assert done["queued"] == []
    assert any("accepted" in line for line in done["log"]), done["log"]
    assert done["curl"]["url"] == f"{origin}/moodle/events"
    assert done["curl"]["settings"] == {"ignoresecurity": True}
    assert done["curl"]["options"]["CURLOPT_FOLLOWLOCATION"] == 0

    deleted = run_task(php, load(DELETED_FIXTURE), f"{origin}/moodle/events")
    assert deleted["outcome"] == "completed", deleted
    log = "\n".join(deleted["log"])
    # Personal data goes to the webhook only, never to the task log.
    assert "a.nowak" not in log and "anna.nowak@example.org" not in log
    assert json.loads(deleted["curl"]["body"])["events"][0]["other"]["email"] == "anna.nowak@example.org"

    refused = run_task(php, load(COMPLETED_FIXTURE) | {"objectid": "9133"}, origin, secret="wrong")
    assert refused["outcome"] == "completed", refused  # not thrown: Moodle must not retry it
    assert refused["queued"] == []
    assert any("ERROR" in line and "HTTP 401" in line for line in refused["log"]), refused["log"]

    records = moodle_records(settings)
    by_event = {m["data"]["eventname"]: (k, m) for k, m in records}
    assert len(records) == 2
    assert set(by_event) == {"\\core\\event\\course_completed", "\\core\\event\\user_deleted"}
    key, message = by_event["\\core\\event\\user_deleted"]
    assert key == b"5721" and message["data"]["other"] is None  # the gateway does not pass them on


def test_the_task_retries_while_the_gateway_has_no_secret(
    php: str, settings: Settings, web_socket: socket.socket
) -> None:
    unconfigured = settings.model_copy(update={"gateway_secret": None, "site_id": SITE})
    with Receiver(unconfigured, web_socket) as receiver:
        answer = post_fixture(php, receiver.origin, COMPLETED_FIXTURE)
        assert (answer["status"], answer["classify"], answer["retry_after"]) == (503, "retry", 60), answer
        failed = run_task(php, load(COMPLETED_FIXTURE), receiver.origin)
    assert failed["outcome"] == "failed", failed  # thrown: Moodle's task manager runs it again
    assert "HTTP 503" in failed["error"]
    assert (failed["faildelay"], failed["nextdelay"]) == (0, 60)


def test_retry_after_stretches_moodles_backoff_and_the_last_attempt_requeues(php: str) -> None:
    event = load(COMPLETED_FIXTURE)
    with answering(503, {"Retry-After": "600"}) as (origin, seen):
        first = run_task(php, event, origin)
        later = run_task(php, event, origin, faildelay=480, attempts=5)
        last = run_task(php, event, origin, faildelay=480, attempts=1)
    assert len(seen) == 3 and all(r["X-Ebackpack-Signature"].startswith("sha256=") for r in seen)

    assert first["outcome"] == "failed" and "HTTP 503" in first["error"]
    assert (first["faildelay"], first["nextdelay"]) == (300, 600)  # 60 s would ignore Retry-After
    assert (later["outcome"], later["faildelay"], later["nextdelay"]) == ("failed", 480, 960)

    assert last["outcome"] == "completed", last  # Moodle 4.4+: no attempt left, so a fresh copy instead
    [copy] = last["queued"]
    assert copy["class"] == "local_ebackpack\\task\\post_event"
    assert copy["customdata"] == event and copy["userid"] is None
    assert copy["faildelay"] == 960 and 955 <= copy["runs_in"] <= 960
    assert any("queued again" in line for line in last["log"])


def test_the_readme_and_the_fake_task_manager_use_moodle_44s_attempt_count(php: str) -> None:
    readme = " ".join((PLUGIN / "README.md").read_text().split())
    assert f"a limited number of attempts ({MOODLE_44_ATTEMPTS})" in readme
    bootstrap = (PHP_DIR / "moodle" / "bootstrap.php").read_text()
    assert f"private int $attemptsavailable = {MOODLE_44_ATTEMPTS};" in bootstrap


def test_no_answer_at_all_is_retried(php: str) -> None:
    url = closed_port_url()
    answer = post_fixture(php, url, COMPLETED_FIXTURE)
    assert (answer["status"], answer["classify"], answer["retry_after"]) == (0, "retry", None), answer
    failed = run_task(php, load(COMPLETED_FIXTURE), url)
    assert failed["outcome"] == "failed" and "no answer" in failed["error"], failed
    assert failed["nextdelay"] == 60


def test_the_observer_queues_one_task_with_the_whole_event(php: str) -> None:
    event = load(DELETED_FIXTURE)
    queued = run_task(php, event, "https://backpack.example.org", mode="observe")
    [task] = queued["queued"]
    assert task["class"] == "local_ebackpack\\task\\post_event"
    assert task["customdata"] == event  # other (username, e-mail) included: the gateway needs who was deleted
    assert task["userid"] is None  # a deleted user could not own a task
    assert queued["curl"] == []  # nothing is sent from the request that triggered the event

    off = run_task(php, event, "", mode="observe")
    assert off["queued"] == []


def test_a_completion_carries_the_completion_date_certificates_print(php: str) -> None:
    event = load(COMPLETED_FIXTURE)
    [task] = run_task(php, event, "https://backpack.example.org", mode="observe", timecompleted=1767225600)[
        "queued"
    ]
    assert task["customdata"] == event | {"timecompleted": 1767225600}
    [without] = run_task(php, event, "https://backpack.example.org", mode="observe")["queued"]
    assert without["customdata"]["timecompleted"] is None  # no snapshot: the gateway falls back
