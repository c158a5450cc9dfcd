"""The demo data set through the whole pipeline: real broker, S3 server, workers, web server, QR reader."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ebackpack.adapters.persistence.engine import make_engine, session_factory
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, Learner
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import Settings
from ebackpack.dev.demo import DemoSummary, run_demo
from ebackpack.dev.sample_data import Dataset, default_dataset
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.readback import read_topics
from ebackpack.streaming.topics import MOODLE_EVENTS, dlq
from schemas import DeadLetterMessage
from tests.conftest import WebServer, isolated, require_tool, reserve_port

pytestmark = pytest.mark.e2e


def certificate_rules(settings: Settings) -> list[str]:
    return [rule.id for rule in load_rules(settings.rules_file).rules if rule.certificate]


DemoRun = tuple[Settings, Dataset, DemoSummary, socket.socket]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, stack_settings: Settings) -> Iterator[DemoRun]:
    web = reserve_port()
    settings = isolated(stack_settings, tmp_path_factory.mktemp("demo"), web)
    dataset = default_dataset()
    yield settings, dataset, run_demo(settings, dataset, timeout=240), web
    web.close()


@pytest.fixture(scope="module")
def web_server(demo_run: DemoRun) -> Iterator[WebServer]:
    """The backpack on the port the PDFs' QR codes point to; uvicorn closes the socket when it stops,
    so it is started once for the module."""
    settings, _dataset, _summary, web = demo_run
    with WebServer(settings, web) as server:
        yield server


def test_every_learner_completion_yields_one_award_and_decoys_none(demo_run: DemoRun) -> None:
    settings, dataset, summary, _web = demo_run
    sessions = session_factory(make_engine(settings.db_url))
    with sessions() as s:
        awarded = s.execute(select(AwardRow.learner_id, AwardRow.course_id)).all()
    assert sorted(awarded) == sorted(dataset.expected_awards)  # exactly one each, nothing for decoys
    assert summary.issued == summary.new_issued == len(dataset.expected_awards)
    assert summary.signed == summary.issued  # every award carries its signed OB 3.0 credential
    assert summary.events == len(dataset.messages)


def test_every_certificate_rule_award_has_one_stored_pdf(demo_run: DemoRun) -> None:
    settings, dataset, summary, _web = demo_run
    sessions = session_factory(make_engine(settings.db_url))
    with sessions() as s:
        with_pdf = s.scalars(
            select(AwardRow.credential_id).where(AwardRow.rule_id.in_(certificate_rules(settings)))
        ).all()
        certs = s.execute(select(CertificateRow.credential_id, CertificateRow.object_key)).all()
    assert sorted(c for c, _ in certs) == sorted(with_pdf)
    stored = sorted(ObjectStore(settings).keys("certificates/"))
    assert stored == sorted(k for _, k in certs)
    assert summary.rendered == len(with_pdf) == len(summary.certificates)
    assert all(Path(link.pdf).read_bytes().startswith(b"%PDF") for link in summary.certificates)


def test_a_badge_and_a_pdf_uploaded_back_import_as_ours(demo_run: DemoRun) -> None:
    _settings, _dataset, summary, _web = demo_run
    assert [(line.source_format, line.status) for line in summary.imports] == [
        ("ob2-png", "verified"),
        ("pdf", "verified"),
    ]


def test_malformed_events_are_dead_lettered_with_a_reason(demo_run: DemoRun) -> None:
    settings, dataset, summary, _web = demo_run
    letters = [
        DeadLetterMessage.model_validate_json(r.value)
        for r in read_topics(settings, [settings.topic(dlq(MOODLE_EVENTS))])
    ]
    assert summary.dead_lettered == len(letters) == dataset.kinds["malformed"]
    originals = {value for _key, value in dataset.messages}
    for letter in letters:
        assert letter.data.reason and letter.data.consumer == "issuer"
        assert letter.data.value in originals  # the original bytes, nothing lost
        assert letter.data.topic == settings.topic(MOODLE_EVENTS)
    assert any("invalid" in letter.data.reason.lower() for letter in letters)


def test_qr_code_of_each_pdf_opens_a_page_that_says_valid(
    demo_run: DemoRun, web_server: WebServer, tmp_path: Path
) -> None:
    settings, _dataset, summary, _web = demo_run
    pdftoppm, zbarimg = require_tool("pdftoppm"), require_tool("zbarimg")
    sessions = session_factory(make_engine(settings.db_url))
    for link in summary.certificates:
        png = tmp_path / f"{link.code}.png"
        subprocess.run(
            [pdftoppm, "-png", "-r", "150", "-singlefile", link.pdf, str(png.with_suffix(""))], check=True
        )
        url = subprocess.run(
            [zbarimg, "--raw", "-q", str(png)], check=True, capture_output=True, text=True
        ).stdout.strip()
        assert url == link.verify_url
        answer = httpx.get(url, headers={"Accept": "application/json"}, timeout=10).json()
        with sessions() as s:
            award = s.scalars(select(AwardRow).where(AwardRow.verification_code == link.code)).one()
            learner = s.get(Learner, award.learner_id)
        assert learner is not None
        assert answer["status"] == "valid"
        assert answer["learner_name"] == f"{learner.firstname} {learner.lastname}"
        assert answer["achievement"] == award.achievement_name
        page = httpx.get(url, headers={"Accept-Language": "en-GB,en"}, timeout=10)
        assert page.status_code == 200 and "Valid" in page.text and learner.lastname in page.text
        polish = httpx.get(url, headers={"Accept-Language": "pl"}, timeout=10)
        assert '<html lang="pl">' in polish.text and "Ważne" in polish.text
    unknown = httpx.get(
        f"{settings.public_url}/verify/AAAA-BBBB-CCCC", headers={"Accept-Language": "en"}, timeout=10
    )
    assert unknown.status_code == 404 and "Unknown" in unknown.text


def test_running_the_same_demo_again_issues_nothing_new(demo_run: DemoRun) -> None:
    settings, dataset, first, _web = demo_run
    second = run_demo(settings, dataset, timeout=240)
    assert second.new_issued == 0
    assert second.issued == first.issued
    assert second.rendered == first.rendered


def test_each_certificate_pdf_carries_its_signed_credential(
    demo_run: DemoRun, web_server: WebServer, tmp_path: Path
) -> None:
    from tests.verifiers.ob3_verifier import verify_ob3

    settings, _dataset, summary, _web = demo_run
    pdfdetach = require_tool("pdfdetach")
    sessions = session_factory(make_engine(settings.db_url))
    for link in summary.certificates[:3]:
        out = tmp_path / f"{link.code}.json"
        subprocess.run([pdfdetach, "-save", "1", "-o", str(out), link.pdf], check=True)
        credential = json.loads(out.read_text(encoding="utf-8"))
        with sessions() as s:
            award = s.scalars(select(AwardRow).where(AwardRow.verification_code == link.code)).one()
        assert credential["id"] == f"urn:uuid:{award.credential_id}"
        result = verify_ob3("di", credential, base_url=settings.public_url)
        assert result["verified"] and result["revoked"] is False, result["errors"]
