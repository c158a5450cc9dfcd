"""The public verification page `/verify/{code}` as a cache may keep it: no session or cookie, ETag and
304, and a revocation by another process shown within the stated bound (`EBACKPACK_VERIFY_CACHE_SECONDS`).

The web server is `ebackpack serve` in its own process; this test process changes the credentials as
the issuer does (`IssuerService` on the same database, SQLite and PostgreSQL), so the server learns of
a change only by reading the database again. No assertion depends on how fast anything runs: an answer
that still says "valid" after the revocation must carry a `max-age` that ends before the bound, and a
request sent once the bound has passed must get the revoked answer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from ebackpack.adapters.persistence.engine import make_engine, session_factory
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.config import Settings
from services.backpack.public_pages import VerificationCache
from services.issuer.service import IssuerService
from tests.builders import sample_issued, wait_until_healthy

PROJECT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


@dataclass
class Site:
    url: str
    service: IssuerService  # the issuer's service layer, in this process: another process than the server
    codes: list[str]  # valid codes, one per test that changes a credential


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(database_url: str, work: Path, cache_seconds: int) -> Iterator[str]:
    """`ebackpack serve` on that database, in its own process; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBACKPACK_")}
    env |= {
        "EBACKPACK_DATA_DIR": str(work / "data"),
        "EBACKPACK_DATABASE_URL": database_url,
        "EBACKPACK_HTTP_PORT": str(port),
        "EBACKPACK_PUBLIC_URL": url,
        "EBACKPACK_VERIFY_CACHE_SECONDS": str(cache_seconds),
        "EBACKPACK_VERIFY_RATE_LIMIT": "100000/minute",
        "PYTHONPATH": str(PROJECT),
    }
    log = (work / f"serve-{port}.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "ebackpack.cli", "serve", "--port", str(port)],
        cwd=work,  # no .env of the checkout
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_healthy(server, url, work / f"serve-{port}.log", START_TIMEOUT)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def issue_sample(database_url: str, work: Path) -> tuple[IssuerService, list[str]]:
    settings = Settings(_env_file=None, data_dir=work / "data", database_url=database_url)
    service = sample_issued(settings)
    with service.sessions() as session:
        awards = session.query(AwardRow).filter(AwardRow.status == "issued").all()
        codes = sorted(a.verification_code for a in awards if a.valid_until is None)
    assert len(codes) >= 3
    return service, codes


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path


def max_age(answer: httpx.Response) -> int:
    directives = dict(
        (part.strip().split("=", 1) + [""])[:2] for part in answer.headers["cache-control"].split(",")
    )
    assert "public" in directives and "no-store" not in directives
    return int(directives["max-age"])


def test_the_page_sets_no_cookie_and_answers_304_while_unchanged(database_url: str, work: Path) -> None:
    _service, codes = issue_sample(database_url, work)
    code = codes[0]
    with (
        serve(database_url, work, cache_seconds=60) as url,
        httpx.Client(base_url=url, timeout=30) as visitor,
    ):
        login = visitor.get("/login")  # a signed-in site page does set the session cookie ...
        assert "ebackpack_session=" in login.headers.get("set-cookie", "")
        assert visitor.cookies  # ... which the visitor now sends along to every page below
        answers = {
            "page": visitor.get(f"/verify/{code}"),
            "page, English": visitor.get(f"/verify/{code}", params={"lang": "en"}),
            "JSON": visitor.get(f"/verify/{code}", params={"format": "json"}),
            "JSON by Accept": visitor.get(f"/verify/{code}", headers={"Accept": "application/json"}),
            "HEAD": visitor.head(f"/verify/{code}"),
            "unknown code": visitor.get("/verify/AAAA-BBBB-CCCC"),
            "no PDF yet": visitor.get(f"/verify/{code}/certificate.pdf", headers={"Accept": "text/html"}),
            "public link, withdrawn or never made": visitor.get(
                "/s/" + "A" * 43, headers={"Accept": "text/html"}
            ),
        }
        for what, answer in answers.items():
            assert "set-cookie" not in answer.headers, what
            assert answer.headers["content-security-policy"].startswith("default-src 'self'"), what
            assert answer.headers["x-content-type-options"] == "nosniff", what
        for what in ("page", "page, English", "JSON", "JSON by Accept", "HEAD", "unknown code"):
            answer = answers[what]
            assert 0 <= max_age(answer) <= 60, what
            assert {"Accept", "Accept-Language", "Cookie"} <= {
                v.strip() for v in answer.headers["vary"].split(",")
            }
            assert answer.headers["etag"].startswith('"'), what  # a strong validator

        page, english = answers["page"], answers["page, English"]
        assert page.status_code == 200 and '<html lang="pl">' in page.text and "Ważne" in page.text
        assert english.status_code == 200 and '<html lang="en">' in english.text and "Valid" in english.text
        assert 'method="get"' in page.text and "csrf_token" not in page.text  # the language switch: ?lang=
        assert answers["JSON"].json()["status"] == answers["JSON by Accept"].json()["status"] == "valid"
        assert answers["HEAD"].status_code == 200 and answers["HEAD"].content == b""
        assert answers["HEAD"].headers["etag"] == page.headers["etag"]
        assert answers["unknown code"].status_code == 404
        assert answers["no PDF yet"].status_code == 404
        assert answers["public link, withdrawn or never made"].status_code == 404
        # one ETag per representation: the page in each language and the JSON differ
        assert len({answers[w].headers["etag"] for w in ("page", "page, English", "JSON")}) == 3

        again = visitor.get(f"/verify/{code}", headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == page.headers["etag"] and "set-cookie" not in again.headers
        listed = visitor.get(
            f"/verify/{code}", headers={"If-None-Match": f'"other", W/{page.headers["etag"]}'}
        )
        assert listed.status_code == 304
        other = visitor.get(
            f"/verify/{code}", headers={"If-None-Match": answers["page, English"].headers["etag"]}
        )
        assert other.status_code == 200 and other.text == page.text  # another representation's tag


def test_a_revocation_by_another_process_shows_within_the_bound(database_url: str, work: Path) -> None:
    bound = 2
    service, codes = issue_sample(database_url, work)
    code = codes[1]
    with (
        serve(database_url, work, cache_seconds=bound) as url,
        httpx.Client(base_url=url, timeout=30) as visitor,
    ):
        before = visitor.get(f"/verify/{code}", params={"format": "json"})
        assert before.json()["status"] == "valid" and max_age(before) <= bound
        page = visitor.get(f"/verify/{code}", params={"lang": "en"})
        assert "Valid" in page.text
        # Everything the server has read so far was read before this revocation is committed.
        service.revoke(code, "Exam taken by someone else")
        revoked_at = time.monotonic()

        answers = 0
        while (sent := time.monotonic()) < revoked_at + bound:
            answer = visitor.get(f"/verify/{code}", params={"format": "json"})
            answers += 1
            if answer.json()["status"] == "valid":
                # A cache that got this answer must drop it before the bound has passed.
                assert sent + max_age(answer) <= revoked_at + bound
            else:
                assert answer.json()["status"] == "revoked"
            time.sleep(0.2)
        assert answers >= 1

        # Sent after the bound: revoked, whatever was kept, and the old tag no longer matches.
        after = visitor.get(
            f"/verify/{code}", params={"format": "json"}, headers={"If-None-Match": before.headers["etag"]}
        )
        assert after.status_code == 200
        assert (
            after.json()["status"] == "revoked"
            and after.json()["revocation_reason"] == "Exam taken by someone else"
        )
        assert after.headers["etag"] != before.headers["etag"]
        again = visitor.get(
            f"/verify/{code}", params={"lang": "en"}, headers={"If-None-Match": page.headers["etag"]}
        )
        assert (
            again.status_code == 200
            and "Revoked" in again.text
            and "Exam taken by someone else" in again.text
        )


def test_with_no_cache_every_request_reads_the_database(database_url: str, work: Path) -> None:
    service, codes = issue_sample(database_url, work)
    code = codes[2]
    with serve(database_url, work, cache_seconds=0) as url, httpx.Client(base_url=url, timeout=30) as visitor:
        before = visitor.get(f"/verify/{code}", params={"format": "json"})
        assert before.json()["status"] == "valid"
        assert before.headers["cache-control"] == "public, no-cache"  # keep it, but ask every time
        assert (
            visitor.get(f"/verify/{code}", headers={"If-None-Match": before.headers["etag"]}).status_code
            == 200
        )
        unchanged = visitor.get(
            f"/verify/{code}", params={"format": "json"}, headers={"If-None-Match": before.headers["etag"]}
        )
        assert unchanged.status_code == 304
        service.revoke(code, "Issued by mistake")
        after = visitor.get(
            f"/verify/{code}", params={"format": "json"}, headers={"If-None-Match": before.headers["etag"]}
        )
        assert after.status_code == 200 and after.json()["status"] == "revoked"


def test_a_kept_answer_ends_when_the_credential_does(database_url: str, work: Path) -> None:
    """Expiry needs no write: an answer that says valid is kept no longer than `valid_until`."""
    _service, codes = issue_sample(database_url, work)
    sessions = session_factory(make_engine(database_url))
    ends = datetime.now(UTC) + timedelta(seconds=10)
    with sessions.begin() as session:
        session.execute(
            update(AwardRow).where(AwardRow.verification_code == codes[0]).values(valid_until=ends)
        )
    now = [1000.0]
    cache = VerificationCache(sessions, 60, clock=lambda: now[0])
    kept = cache.read(codes[0])
    assert kept.verification.status == "valid"
    assert 1000.0 < kept.expires <= 1010.0 and cache.max_age(kept) <= 10
    later = cache.read(codes[1])  # no end date: the bound
    assert later.expires == 1060.0 and cache.max_age(later) == 60
    cache.keep(codes[1], later)
    now[0] = 1059.9
    assert cache.fresh(codes[1]) is later
    now[0] = 1060.0
    assert cache.fresh(codes[1]) is None  # read again from here on
