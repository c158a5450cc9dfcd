"""Re-rendering a course keeps every version, the verification page names the current one, downloads go
through pre-signed links that expire, and a course's certificates come out as one streamed ZIP."""

from __future__ import annotations

import csv
import hashlib
import io
import socket
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ebackpack.adapters.certificate_reads import MANIFEST, course_entries, write_zip
from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, Learner
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.demo import running_pipeline
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.rules import load_rules
from services.gateway.profiles import store_profiles
from services.gateway.publisher import MoodleEventPublisher
from services.issuer.service import IssuerService
from tests.builders import completion, wait_for
from tests.conftest import WebServer

pytestmark = pytest.mark.e2e
LEARNERS, COURSE = (5722, 5724, 5725), 42


def test_rerender_versions_downloads_and_zip(
    settings: Settings, web_socket: socket.socket, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"download_link_seconds": 2})
    sessions = prepare(settings)
    store_profiles(sessions, default_dataset().profiles)

    def versions() -> dict[int, list[CertificateRow]]:
        with sessions() as s:
            rows = s.execute(
                select(AwardRow.learner_id, CertificateRow).join(
                    CertificateRow, CertificateRow.credential_id == AwardRow.credential_id
                )
            ).all()
        found: dict[int, list[CertificateRow]] = {}
        for learner, row in rows:
            found.setdefault(learner, []).append(row)
        return found

    with running_pipeline(settings) as workers:
        publisher = MoodleEventPublisher(settings)
        publisher.publish(
            [(str(n).encode(), completion(n, COURSE, datetime(2026, 1, 12, tzinfo=UTC))) for n in LEARNERS]
        )
        publisher.close()
        wait_for(lambda: len(versions()) == len(LEARNERS), 120, "three certificates", workers)
        first = {n: rows[0] for n, rows in versions().items()}

        with sessions.begin() as s:  # the learner's name is corrected in Moodle
            learner = s.get(Learner, LEARNERS[0])
            assert learner is not None
            learner.lastname = "Kowalska-Nowak"
        service = IssuerService(sessions, load_rules(settings.rules_file), settings)
        assert service.rerender(course_id=COURSE) == len(LEARNERS)
        wait_for(lambda: len(versions()[LEARNERS[0]]) == 2, 60, "a second version", workers)
        time.sleep(3)  # the other two re-renders are done too (same bytes: no new version)
        now = versions()

    assert {n: len(rows) for n, rows in now.items()} == {LEARNERS[0]: 2, LEARNERS[1]: 1, LEARNERS[2]: 1}
    old = first[LEARNERS[0]]
    current = next(r for r in now[LEARNERS[0]] if r.sha256 != old.sha256)
    store = ObjectStore(settings)
    assert hashlib.sha256(store.get(old.object_key)).hexdigest() == old.sha256  # still retrievable
    assert hashlib.sha256(store.get(current.object_key)).hexdigest() == current.sha256

    with sessions() as s:
        code = s.scalars(select(AwardRow.verification_code).where(AwardRow.learner_id == LEARNERS[0])).one()
    with WebServer(settings, web_socket):
        page = httpx.get(f"{settings.public_url}/verify/{code}?format=json").json()
        assert page["certificate"]["version"] == 2 and page["certificate"]["sha256"] == current.sha256
        assert [v["sha256"] for v in page["earlier_versions"]] == [old.sha256]
        assert "Kowalska-Nowak" in page["learner_name"]
        link = httpx.get(f"{settings.public_url}/verify/{code}/certificate.pdf")
        assert link.status_code == 307
        pdf = httpx.get(link.headers["location"])
        assert pdf.status_code == 200 and hashlib.sha256(pdf.content).hexdigest() == current.sha256
        time.sleep(3)
        assert httpx.get(link.headers["location"]).status_code == 403  # the link has expired

    archive = tmp_path / "course-42.zip"
    with sessions() as s:
        entries = course_entries(s, COURSE)
    with archive.open("wb") as target:
        assert write_zip(store, entries, target) == len(LEARNERS)
    with zipfile.ZipFile(archive) as z:
        manifest = list(csv.DictReader(io.StringIO(z.read(MANIFEST).decode())))
        assert len(manifest) == len(LEARNERS) and len(z.namelist()) == len(LEARNERS) + 1
        for row in manifest:
            assert hashlib.sha256(z.read(row["file"])).hexdigest() == row["sha256"]
        assert current.sha256 in {row["sha256"] for row in manifest}
        assert old.sha256 not in {row["sha256"] for row in manifest}
