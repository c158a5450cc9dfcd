""" "Is this PDF genuine?" on the web server (`POST /verify/check`): a stored certificate version byte for
byte, the same with one byte changed, the same re-saved by another tool (qpdf), a PDF that is not ours
and hostile files. The certificates are real renders of the sample awards."""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pikepdf
import pytest
from weasyprint import HTML

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, OutboxRow
from schemas import CertificateRenderRequestMessage
from services.issuer.service import IssuerService
from services.renderer.certificate import CertificateRenderer
from tests.builders import loopback_settings, sample_issued
from tests.conftest import WebServer, reserve_port

pytestmark = pytest.mark.integration


@dataclass
class Stored:
    url: str
    service: IssuerService
    pdf: bytes  # the stored (current) version
    award: AwardRow


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    tmp = tmp_path_factory.mktemp("pdfcheck")
    sock = reserve_port()
    settings = loopback_settings(tmp, sock.getsockname()[1])
    requests: list[CertificateRenderRequestMessage] = []

    def keep(rows: list[OutboxRow]) -> None:
        requests.extend(
            CertificateRenderRequestMessage.model_validate_json(r.payload)
            for r in rows
            if r.topic.endswith("certificates.render")
        )

    service = sample_issued(settings, keep)
    request = requests[0].data
    pdf = CertificateRenderer().render(request)
    with service.sessions.begin() as session:
        session.add(
            CertificateRow(
                credential_id=request.credential_id,
                bucket="test",
                object_key=f"certificates/{request.credential_id}/x.pdf",
                sha256=hashlib.sha256(pdf).hexdigest(),
                size=len(pdf),
                template=request.template,
                rendered_at=datetime.now(UTC),
            )
        )
    with service.sessions() as session:
        award = session.get(AwardRow, request.credential_id)
    assert award is not None
    with WebServer(settings, sock) as server:
        yield Stored(server.url, service, pdf, award)
    sock.close()


def check(stored: Stored, data: bytes) -> dict[str, Any]:
    answer = httpx.post(
        f"{stored.url}/verify/check", files={"file": ("copy.pdf", data, "application/pdf")}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert "set-cookie" not in answer.headers
    result: dict[str, Any] = answer.json()
    return result


def test_the_stored_certificate_is_genuine(stored: Stored) -> None:
    result = check(stored, stored.pdf)
    assert result["verdict"] == "genuine" and result["verification_code"] == stored.award.verification_code
    assert (result["version"], result["versions"], result["current"]) == (1, 1, True)
    assert result["status"] == "valid" and result["held"]["achievement"] == stored.award.achievement_name


def test_one_changed_byte_is_found_and_the_certificate_it_claims_named(stored: Stored) -> None:
    at = stored.pdf.index(b"/ID [<") + len(b"/ID [<")
    changed = stored.pdf[:at] + (b"0" if stored.pdf[at : at + 1] != b"0" else b"1") + stored.pdf[at + 1 :]
    result = check(stored, changed)
    assert result["verdict"] == "altered" and result["verification_code"] == stored.award.verification_code
    assert result["attached_credential"]["verified"] is True  # the credential inside is still ours


def test_a_copy_re_saved_by_another_tool_is_not_the_issued_file(stored: Stored) -> None:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(stored.pdf)) as pdf:
        pdf.save(out)
    result = check(stored, out.getvalue())
    assert result["verdict"] == "altered" and result["verification_code"] == stored.award.verification_code


def test_a_pdf_from_elsewhere_is_not_ours(stored: Stored) -> None:
    other = HTML(string="<h1>Certificate of Excellence</h1><p>Jan Kowalski</p>").write_pdf()
    result = check(stored, other)
    assert result["verdict"] == "not_ours" and result["verification_code"] is None


@pytest.mark.parametrize("kind", ["not a pdf", "bomb"])
def test_hostile_files_are_refused_with_their_reason(stored: Stored, kind: str) -> None:
    if kind == "not a pdf":
        data = b"PK\x03\x04" + b"\0" * 1000
    else:
        out = io.BytesIO()
        pdf = pikepdf.new()
        pdf.add_blank_page()
        bomb = pikepdf.Stream(pdf, zlib.compress(b"\0" * (200 * 1024 * 1024), 9))
        bomb["/Filter"] = pikepdf.Name.FlateDecode
        pdf.Root["/Bomb"] = pdf.make_indirect(bomb)
        pdf.save(out, compress_streams=False)
        data = out.getvalue()
    result = check(stored, data)
    assert result["verdict"] == "not_ours"
    assert ("not a PDF" in result["reason"]) if kind == "not a pdf" else ("MiB" in result["reason"])


def test_the_page_answers_a_browser_in_its_language(stored: Stored) -> None:
    answer = httpx.post(
        f"{stored.url}/verify/check?lang=en",
        files={"file": ("copy.pdf", stored.pdf, "application/pdf")},
        headers={"Accept": "text/html"},
        timeout=60,
    )
    assert answer.status_code == 200
    assert f"Genuine: this is certificate {stored.award.verification_code}" in answer.text
