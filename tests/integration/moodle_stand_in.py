"""What the gateway reads profiles from, for tests: Moodle's tables on the machine's PostgreSQL, a stand-in
for Moodle's REST web services (the two functions the gateway calls), and a broker of a test's own that the
test can kill or freeze."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Engine, create_engine, text

from ebackpack.dev.stack import free_port, tansu_binary
from tests.http_stub import LoopbackServer, QuietHandler, respond

MOODLE_TABLES = """
CREATE TABLE mdl_user (id BIGINT PRIMARY KEY, deleted SMALLINT NOT NULL DEFAULT 0, username VARCHAR(100),
  firstname VARCHAR(100), lastname VARCHAR(100), email VARCHAR(100), lang VARCHAR(30), timemodified BIGINT);
CREATE TABLE mdl_course (id BIGINT PRIMARY KEY, fullname VARCHAR(254), shortname VARCHAR(255));
CREATE TABLE mdl_course_completions (id BIGINT PRIMARY KEY, userid BIGINT, course BIGINT,
  timecompleted BIGINT);
"""


@dataclass
class Site:
    """The rows a Moodle site has: users (id, first, last, e-mail, lang), courses (id, full, short) and
    course completions (id, user, course, timecompleted)."""

    users: Sequence[tuple[int, str, str, str, str]] = ()
    courses: Sequence[tuple[int, str, str]] = ()
    completions: Sequence[tuple[int, int, int, int]] = ()


def moodle_database(url: str, site: Site) -> Engine:
    """Moodle's user, course and course_completions tables (the columns the gateway reads), filled."""
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in MOODLE_TABLES.strip().split(";"):
            if statement.strip():
                connection.execute(text(statement))
        for uid, first, last, email, lang in site.users:
            connection.execute(
                text("INSERT INTO mdl_user VALUES (:i, 0, :u, :f, :l, :e, :g, 0)"),
                {"i": uid, "u": f"user{uid}", "f": first, "l": last, "e": email, "g": lang},
            )
        for cid, full, short in site.courses:
            connection.execute(
                text("INSERT INTO mdl_course VALUES (:i, :f, :s)"), {"i": cid, "f": full, "s": short}
            )
        for rid, uid, cid, when in site.completions:
            connection.execute(
                text("INSERT INTO mdl_course_completions VALUES (:i, :u, :c, :t)"),
                {"i": rid, "u": uid, "c": cid, "t": when},
            )
    return engine


@dataclass
class WebServices:
    """A stand-in for `/webservice/rest/server.php`: the token, and the answers Moodle gives."""

    site: Site
    token: str = "ws-token"
    calls: list[dict[str, list[str]]] = field(default_factory=list)
    delay: float = 0.0  # seconds before each answer (a slow Moodle)

    def answer(self, form: dict[str, list[str]]) -> Any:
        self.calls.append(form)
        if form.get("wstoken") != [self.token]:
            return {"exception": "moodle_exception", "errorcode": "invalidtoken", "message": "Invalid token"}
        if form.get("wsfunction") == ["core_user_get_users_by_field"]:
            wanted = {int(v[0]) for k, v in form.items() if k.startswith("values[")}
            return [
                {"id": u, "firstname": f, "lastname": last, "email": e, "lang": g}
                for u, f, last, e, g in self.site.users
                if u in wanted
            ]
        if form.get("wsfunction") == ["core_course_get_courses_by_field"]:
            wanted = {int(v) for v in form["value"][0].split(",")}
            return {
                "courses": [
                    {"id": c, "fullname": f, "shortname": s} for c, f, s in self.site.courses if c in wanted
                ],
                "warnings": [],
            }
        return {
            "exception": "moodle_exception",
            "errorcode": "invalidfunction",
            "message": "no such function",
        }


@contextmanager
def serving(services: WebServices) -> Iterator[str]:
    """Serves `services` on 127.0.0.1; yields the Moodle base URL."""

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
            if services.delay:
                time.sleep(services.delay)
            respond(self, 200, json.dumps(services.answer(form)).encode())

    with LoopbackServer(Handler, daemon_threads=True) as server:
        yield server.url


class Broker:
    """A Tansu broker of one test (in-memory storage), so the test can kill or freeze it."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Broker:
        url = f"tcp://{self.bootstrap}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "tansu.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    tansu_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the test broker exited while starting"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the test broker did not listen within 60 s")

    def kill(self) -> None:
        """Down: connections are refused."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def freeze(self) -> None:
        """Hung: connections stay open and nothing is answered."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
        self.kill()
