"""The renderer's service layer on real S3 (the test stack's) and SQLite: batches, poison, re-delivery."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pikepdf
import pytest

from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.rules import load_rules
from ebackpack.streaming.errors import InvalidMessage
from schemas import CertificateRenderRequestMessage
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from services.renderer.certificate import CertificateRenderer
from services.renderer.service import RendererService

pytestmark = pytest.mark.integration


@dataclass
class Rendering:
    service: RendererService
    requests: list[bytes]  # the issuer's render requests for the sample completions

    def request(self, index: int, **changes: object) -> bytes:
        message = CertificateRenderRequestMessage.model_validate_json(self.requests[index])
        data = message.data.model_copy(update=changes)
        return message.model_copy(update={"data": data}).to_bytes()


@pytest.fixture
def rendering(settings: Settings) -> Rendering:
    migrate(settings.db_url)
    sessions = session_factory(make_engine(settings.db_url))
    store_profiles(sessions, default_dataset().profiles)
    issuer = IssuerService(sessions, load_rules(SAMPLE_DIR / "rules.toml"), settings)
    requests = []
    for _key, value in default_dataset().messages:
        try:
            rows = issuer.handle(value)
        except InvalidMessage:
            continue
        requests += [row.payload for row in rows if row.topic.endswith("certificates.render")]
    store = ObjectStore(settings)
    store.ensure_bucket()
    return Rendering(RendererService(sessions, store, CertificateRenderer(), settings), requests)


def credential(raw: bytes) -> str:
    return CertificateRenderRequestMessage.model_validate_json(raw).data.credential_id


def template(raw: bytes) -> str:
    return CertificateRenderRequestMessage.model_validate_json(raw).data.template


def test_a_batch_stores_one_pdf_per_request_and_dead_letters_only_the_poison(rendering: Rendering) -> None:
    raws = [
        rendering.request(0),
        b"{not json",
        rendering.request(1, template="fancy"),
        rendering.request(2),
        rendering.request(3, language="en", template="formal"),
    ]

    result = rendering.service.handle_batch(raws)

    assert [index for index, _ in result.invalid] == [1, 2]
    assert "unknown certificate template 'fancy'" in str(result.invalid[1][1])
    announced = [event.data for event in result.announcements]
    assert [a.credential_id for a in announced] == [credential(raws[i]) for i in (0, 3, 4)]
    assert [a.template for a in announced] == [template(raws[i]) for i in (0, 3, 4)]
    assert announced[2].template == "formal"
    for rendered in announced:
        pdf = rendering.service.store.get(rendered.object_key)
        assert rendered.sha256 in rendered.object_key and len(pdf) == rendered.size
        with pikepdf.open(io.BytesIO(pdf)) as document:
            assert len(document.pages) == 1
            assert document.open_metadata()["pdfuaid:part"] == "1"


def test_a_redelivered_batch_announces_the_stored_pdfs_without_new_versions(rendering: Rendering) -> None:
    raws = [rendering.request(0), rendering.request(1)]
    first = [event.data for event in rendering.service.handle_batch(raws).announcements]

    again = [
        event.data
        for event in rendering.service.handle_batch([raws[1], rendering.request(2), raws[0]]).announcements
    ]

    assert [a.object_key for a in again] == [first[1].object_key, again[1].object_key, first[0].object_key]
    assert len(list(rendering.service.store.keys("certificates/"))) == 3


def test_one_request_alone_and_in_a_batch_lands_on_the_same_object(rendering: Rendering) -> None:
    alone = rendering.service.handle(rendering.request(0)).data

    batch = rendering.service.handle_batch([rendering.request(1), rendering.request(0, rerender=True)])

    assert batch.announcements[1].data.object_key == alone.object_key
    assert len(list(rendering.service.store.keys(f"certificates/{alone.credential_id}/"))) == 1
