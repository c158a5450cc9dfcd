"""One learner's hostile files never hold up another learner's verdict: a running importer worker on the
real broker, S3 server and database, uploads through the backpack API.

Learner A uploads four PDFs whose XObjects nest exponentially (poppler would render them for ever) and
canonicalization bombs; learner B then uploads a harmless file. B's verdict comes while A's files are
still in work; each of A's files is rejected with the budget or bound it ran over; the worker lives on.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pikepdf
import pytest
from PIL import Image

from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.workers import Worker
from services.backpack.auth import issue_token
from tests.builders import wait_for
from tests.conftest import WebServer
from tests.hostile_jsonld import SHAPES, poisoned_credential

pytestmark = pytest.mark.integration
HOSTILE, OTHER = 6101, 6102


def nested_xobjects_pdf(depth: int = 12, fan_out: int = 8, seed: int = 0) -> bytes:
    """A ~4 KB PDF: a page draws form X12, which draws X11 eight times, ... X1 fills a square: 8^12
    draws. poppler catches a form that draws itself, not this. Slow, not greedy: pdftotext's memory
    stays flat (a letter instead of the square adds a word to its text per draw, ~270 MB in 6 s, so the
    memory limit could stop it before the time budget on a fast core)."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(200, 200))
    inner: pikepdf.Object | None = None
    for _ in range(depth):
        body = b"0 0 1 1 re f" if inner is None else b" ".join([b"q 0.9 0 0 0.9 1 1 cm /X Do Q"] * fan_out)
        form = pdf.make_indirect(pikepdf.Stream(pdf, body))
        form.Type, form.Subtype, form.BBox = pikepdf.Name.XObject, pikepdf.Name.Form, [0, 0, 200, 200]
        form.Resources = pikepdf.Dictionary()
        if inner is not None:
            form.Resources.XObject = pikepdf.Dictionary(X=inner)
        inner = form
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(X=inner))
    page.Contents = pdf.make_stream(b"/X Do")
    pdf.docinfo["/Title"] = f"Nested {seed}"  # four different files
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def plain_certificate_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(
        Font=pikepdf.Dictionary(
            F1=pikepdf.Dictionary(
                Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
            )
        )
    )
    page.Contents = pdf.make_stream(b"BT /F1 24 Tf 60 700 Td (Certificate of completion) Tj ET")
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@dataclass
class Upload:
    id: str
    sent: float  # time.monotonic() when the 202 came
    verdict: dict[str, Any] | None = None
    judged: float | None = None  # time.monotonic() when the verdict was first seen

    @property
    def seconds(self) -> float:
        assert self.judged is not None
        return self.judged - self.sent


class Backpack:
    def __init__(self, settings: Settings, client: httpx.Client, worker: Worker) -> None:
        self.settings, self.client, self.worker = settings, client, worker

    def upload(self, learner: int, name: str, data: bytes) -> Upload:
        answer = self.client.post(
            "/api/attestations", files={"file": (name, data)}, headers=self._auth(learner)
        )
        assert answer.status_code == 202, answer.text
        return Upload(answer.json()["id"], time.monotonic())

    def watch(self, uploads: dict[int, list[Upload]], seconds: float) -> None:
        """Polls until every upload has a verdict, noting when each was first seen."""

        def all_judged() -> bool:
            for learner, pending in uploads.items():
                for upload in pending:
                    if upload.verdict is None:
                        path = f"/api/attestations/{upload.id}"
                        body = self.client.get(path, headers=self._auth(learner)).json()
                        if body["state"] != "received":
                            upload.verdict, upload.judged = body, time.monotonic()
            return all(u.verdict is not None for pending in uploads.values() for u in pending)

        wait_for(all_judged, seconds=seconds, what="every upload judged", workers=[self.worker])

    def _auth(self, learner: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, learner)}"}


@pytest.fixture
def backpack(settings: Settings, web_socket: Any, request: pytest.FixtureRequest) -> Iterator[Backpack]:
    overrides = {"import_max_upload_bytes": 1_000_000, "import_workers": 2, **getattr(request, "param", {})}
    settings = settings.model_copy(update=overrides)
    prepare(settings)
    worker = Worker("importer", settings)
    worker.start()
    try:
        with (
            WebServer(settings, web_socket) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            yield Backpack(settings, client, worker)
    finally:
        worker.stop()


def large_photo() -> bytes:
    """A 36-megapixel PNG of one colour: 120 KB to upload, over 100 MiB once decoded (under the
    importer's 40-megapixel bound, so the memory budget is what stops it)."""
    out = io.BytesIO()
    Image.new("RGB", (6000, 6000), (200, 180, 40)).save(out, "PNG", optimize=True)
    return out.getvalue()


def warm_up(backpack: Backpack) -> None:
    """The worker's import processes are up (they start with the worker) before anything is measured."""
    first = backpack.upload(OTHER, "warm-up.pdf", plain_certificate_pdf())
    backpack.watch({OTHER: [first]}, seconds=120)


def test_hostile_pdfs_of_one_learner_do_not_delay_another_learners_verdict(backpack: Backpack) -> None:
    warm_up(backpack)
    budget = backpack.settings.import_file_seconds
    hostile = [backpack.upload(HOSTILE, f"nested-{i}.pdf", nested_xobjects_pdf(seed=i)) for i in range(4)]
    other = backpack.upload(OTHER, "certificate.pdf", plain_certificate_pdf())

    backpack.watch({HOSTILE: hostile, OTHER: [other]}, seconds=4 * budget + 120)

    assert other.verdict is not None and other.verdict["state"] == "imported"
    assert other.verdict["record"]["verification"]["status"] == "not verifiable"
    print(
        f"\nB's verdict {other.seconds:.2f} s after its upload; A's verdicts after "
        + ", ".join(f"{u.seconds:.1f}" for u in hostile)
        + " s"
    )
    # B is judged while A's files are still in work (before A's second), within one file's budget
    # (before: after all four of A's files, 167 s).
    assert other.judged is not None and hostile[1].judged is not None and other.judged < hostile[1].judged
    assert other.seconds < budget
    for upload in hostile:
        assert upload.verdict is not None and upload.verdict["state"] == "rejected"
        reason = upload.verdict["rejection_reason"]
        assert "took longer than" in reason or "budget" in reason, reason
    # A's files are judged one after another, each within the per-file budget.
    assert hostile[-1].seconds < 4 * (budget + 2)
    assert backpack.worker.running


def test_canonicalization_bombs_are_rejected_fast_while_another_learner_is_served(backpack: Backpack) -> None:
    warm_up(backpack)
    bombs = {
        name: backpack.upload(HOSTILE, f"{name}.json", poisoned_credential(make()))
        for name, make in sorted(SHAPES.items())
    }
    other = backpack.upload(OTHER, "certificate.pdf", plain_certificate_pdf())

    backpack.watch({HOSTILE: list(bombs.values()), OTHER: [other]}, seconds=120)

    print(
        "\n"
        + ", ".join(f"{name} {u.seconds:.2f} s" for name, u in bombs.items())
        + f"; the other learner's verdict {other.seconds:.2f} s"
    )
    for name, upload in bombs.items():
        assert upload.verdict is not None and upload.verdict["state"] == "rejected", name
        assert upload.verdict["rejection_reason"].endswith("rejected"), upload.verdict
        assert upload.seconds < 10, (name, upload.seconds)  # every file: a verdict in under 10 s
    assert other.verdict is not None and other.verdict["state"] == "imported"
    assert other.seconds < 10
    assert backpack.worker.running


@pytest.mark.parametrize(
    "backpack", [{"import_file_seconds": 3, "import_file_memory_mb": 250}], indirect=True
)
def test_a_file_over_its_time_or_memory_budget_is_stopped_and_the_next_one_served(backpack: Backpack) -> None:
    warm_up(backpack)
    slow = backpack.upload(HOSTILE, "nested.pdf", nested_xobjects_pdf())  # poppler alone would take 6 s
    greedy = backpack.upload(HOSTILE, "photo.png", large_photo())
    after = backpack.upload(HOSTILE, "certificate.pdf", plain_certificate_pdf())

    backpack.watch({HOSTILE: [slow, greedy, after]}, seconds=120)

    print(
        f"\nover time: {slow.seconds:.2f} s, over memory: {greedy.seconds:.2f} s, "
        f"the next file: {after.seconds:.2f} s"
    )
    assert slow.verdict is not None and greedy.verdict is not None and after.verdict is not None
    assert slow.verdict["state"] == "rejected"
    assert "took longer than the 3 s one file may take" in slow.verdict["rejection_reason"]
    assert greedy.verdict["state"] == "rejected"
    assert "more than the 250 MiB of memory" in greedy.verdict["rejection_reason"], greedy.verdict
    assert after.verdict["state"] == "imported"  # a fresh import process took over
    assert backpack.worker.running


def test_files_queued_when_the_worker_is_killed_are_judged_after_it_restarts(backpack: Backpack) -> None:
    """The agent commits an upload event once the file is queued, before it is judged: a crash loses
    nothing because the row waits in `received` and the stuck-upload sweep imports it."""
    warm_up(backpack)
    queued = [backpack.upload(HOSTILE, f"nested-{i}.pdf", nested_xobjects_pdf(seed=i)) for i in range(3)]
    queued.append(backpack.upload(HOSTILE, "certificate.pdf", plain_certificate_pdf()))
    backpack.watch({HOSTILE: queued[:1]}, seconds=120)  # the first is judged, the others wait behind it

    backpack.worker.kill()
    backpack.worker.start()
    backpack.watch({HOSTILE: queued}, seconds=300)  # the sweep looks every 30 s at uploads over 60 s old

    states = [u.verdict["state"] for u in queued if u.verdict]
    assert states == ["rejected", "rejected", "rejected", "imported"]


def test_an_import_process_that_dies_while_idle_is_replaced_and_the_file_still_judged(
    settings: Settings,
) -> None:
    from datetime import UTC, datetime

    from ebackpack.adapters.persistence.tables import AttestationRow
    from ebackpack.adapters.storage import ObjectStore
    from services.importer.sandbox import Budget, Sandbox

    sessions = prepare(settings)
    data = plain_certificate_pdf()
    ObjectStore(settings).put("attestations/1/a.pdf", data, "application/pdf")
    with sessions.begin() as session:
        session.add(
            AttestationRow(
                id="a",
                learner_id=1,
                object_key="attestations/1/a.pdf",
                size=len(data),
                received_at=datetime.now(UTC),
            )
        )
    sandbox = Sandbox(settings, Budget(seconds=8, memory_bytes=1024 * 1024 * 1024))
    try:
        assert sandbox.run("a").result is not None
        child = sandbox._child
        assert child is not None
        child.kill()
        child.wait()

        outcome = sandbox.run("a")  # written to a dead pipe: a fresh process takes the file

        assert outcome.result is not None and "not verifiable" in outcome.result
        assert sandbox._child is not child
    finally:
        sandbox.close()
