"""Certificates per second: naive WeasyPrint, the shipped renderer (1 and N processes), and TCPDF.

    .venv/bin/python bench/render_benchmark.py [--count N] [--rounds R] [--workers W] [--json] [--keep]

All engines print the same N generated certificates (Polish names with diacritics, some long), each to
its own PDF file, one after another on this machine, so the ratios inside one run are what matter:

(a)  naive WeasyPrint: per certificate a fresh Jinja2 environment and template, a fresh FontConfiguration,
     the stylesheet parsed anew, the QR code, `HTML(string=...).write_pdf()`; same template folder
     (`services/renderer/templates/default/`), the same template context and PDF options (tagged
     PDF/A-3b) as the renderer;
(b)  `CertificateRenderer().render_batch()` in this process, 8 certificates a call (BATCH_SIZE: what the
     renderer worker takes from its topic at a time): a new renderer, which builds the skeleton of each
     shape (services/renderer/skeleton.py) the first time it meets it, inside the timed loop;
(b2) the same in W worker processes (spawned, each with its own renderer and 1/W of the certificates),
     timed on the wall clock from a barrier after every worker has started and rendered one warm-up page;
(b') the renderer of (b) on the same certificates again: every skeleton built, as in a flood of
     completions of a few rules;
(f)  `CertificateRenderer(fast=False)`: every certificate laid out by WeasyPrint, no skeletons;
(c)  TCPDF (the engine of Moodle's mod_customcert) through `php bench/tcpdf/certificate.php`, timed
     from PHP's start to its exit; the script's own figure for its render loop is shown as well.

(a) and (b) render one warm-up certificate first (not counted): imports and first-call caches are not
what they compare. Then the same certificates from (a) and (b) are rasterized with pdftoppm and compared
pixel by pixel; the script exits with 1 if any page differs beyond the tolerance (see TOLERANCE).

Besides wall-clock time, each row shows the CPU time per certificate of the processes doing the work
(this process for (a) and (b), the workers' render loops added up for (b2), php's user + system time for
(c)): other work on the machine stretches wall-clock figures much more than CPU time, so with other load
the CPU column is the one to compare.

Progress goes to stderr; the table goes to stdout, or to stderr when `--json` puts one JSON object on
stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import reduce
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import weasyprint
from common import LOAD_BEFORE, BenchError
from common import say as log
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from PIL import Image, ImageChops
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration

from schemas.certificates import CertificateRenderRequest
from services.renderer.certificate import BATCH_SIZE, CertificateRenderer
from services.renderer.pages import credential_attachments, document_html, workload_line

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = PROJECT / "services" / "renderer" / "templates"
PHP_SCRIPT = Path(__file__).resolve().parent / "tcpdf" / "certificate.php"
TCPDF_CANDIDATES = ("/usr/share/php/tcpdf/tcpdf.php", "/usr/share/php/TCPDF/tcpdf.php")
DPI = 100
# A page passes when fewer than 0.1 % of its pixels differ by more than 16/255 in any channel.
TOLERANCE = {"channel_threshold": 16, "max_share": 0.001}
# The renderer as shipped writes tagged PDF/A-3b; the naive loop asks WeasyPrint for the same kind of PDF.
NAIVE_PDF_OPTIONS: dict[str, Any] = {"pdf_variant": "pdf/a-3b", "pdf_tags": True}
WORKER_TIMEOUT = 600.0  # seconds a worker may take to start, or to render its share

FIRST_NAMES = (
    "Zofia",
    "Łukasz",
    "Małgorzata",
    "Jędrzej",
    "Żaneta",
    "Bożena",
    "Ścibor",
    "Grzegorz",
    "Agnieszka",
    "Wojciech",
    "Józef",
    "Urszula",
)
LAST_NAMES = (
    "Wiśniewska",
    "Brzęczyszczykiewicz",
    "Kołodziej",
    "Żółkiewska",
    "Gąsiorowski",
    "Świątek",
    "Dąbrowska",
    "Łęcki",
    "Szczęsny",
    "Wróblewska",
)
LONG_NAMES = (
    "Zażółć Gęślą-Jaźń Wielkopolska-Świętokrzyska",
    "Małgorzata Aleksandra Brzęczyszczykiewicz-Żółtowska-Ślęzak",
    "Jędrzej Świętosław Gąsiorowski-Łękawski",
)
COURSES = (  # course, achievement, description, learning outcomes, (ECTS, hours, EQF level)
    (
        "Pierwsza pomoc przedmedyczna dla dorosłych",
        "Pierwsza pomoc przedmedyczna",
        "Udziela pierwszej pomocy zgodnie z aktualnymi wytycznymi.",
        (
            "Ocenia bezpieczeństwo miejsca zdarzenia i wzywa pomoc.",
            "Prowadzi resuscytację krążeniowo-oddechową dorosłego z użyciem AED.",
        ),
        (1, 16, 4),
    ),
    (
        "Podstawy programowania w języku Python",
        "Programista Pythona – poziom podstawowy",
        "Pisze, testuje i dokumentuje małe programy w języku Python.",
        ("Pisze programy z funkcjami i modułami.", "Testuje kod za pomocą pytest."),
        (2.5, 50, 5),
    ),
    (
        "Bezpieczeństwo i higiena pracy w biurze",
        "Szkolenie okresowe BHP",
        "Zna zasady bezpiecznej pracy przy komputerze i udziela pomocy w razie wypadku.",
        ("Organizuje stanowisko pracy zgodnie z przepisami.", "Rozpoznaje zagrożenia w biurze."),
        (None, 8, None),
    ),
    (
        "Rachunkowość małych przedsiębiorstw – księga przychodów i rozchodów",
        "Księgowość uproszczona",
        "Prowadzi księgę przychodów i rozchodów oraz rozlicza podatek dochodowy małej firmy.",
        ("Prowadzi księgę przychodów i rozchodów.", "Rozlicza podatek dochodowy małej firmy."),
        (3, 75, 5),
    ),
)
AWARDING_BODIES = (
    "Stowarzyszenie Edukacji Dorosłych",
    "Centrum Kształcenia Ustawicznego w Łodzi",
    "Uniwersytet Ludowy Ziemi Świętokrzyskiej",
)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


# --- the certificates ---------------------------------------------------------------------------------


def learner_name(index: int, rng: random.Random) -> str:
    """Every fifth name is long (two of them long enough for the template's smallest name size)."""
    if index % 5 == 2:
        return LONG_NAMES[(index // 5) % len(LONG_NAMES)]
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def make_records(count: int, seed: int = 7) -> list[CertificateRenderRequest]:
    """The same N certificates for every engine (deterministic for a seed)."""
    rng = random.Random(seed)
    records = []
    for index in range(count):
        course, achievement, description, outcomes, (ects, hours, eqf) = COURSES[index % len(COURSES)]
        code = "-".join("".join(rng.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(3))
        credential_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        records.append(
            CertificateRenderRequest(
                credential_id=credential_id,
                verification_code=code,
                verify_url=f"https://ebackpack.example.pl/verify/{code}",
                learner_name=learner_name(index, rng),
                course_name=course,
                achievement_name=achievement,
                achievement_description=description,
                issued_on=datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(days=index % 300, minutes=index),
                awarding_body=AWARDING_BODIES[index % len(AWARDING_BODIES)],
                language="pl",
                learning_outcomes=list(outcomes),
                ects=ects,
                hours=hours,
                eqf_level=eqf,
                credential_json=credential_json(credential_id, achievement, description, rng),
            )
        )
    return records


def credential_json(credential_id: str, achievement: str, description: str, rng: random.Random) -> str:
    """A stand-in for the signed OB 3.0 credential every pipeline certificate carries (~3 KB, like
    the issuer's): the PDF attaches it as is, so only its size matters here."""
    signature = "z" + "".join(
        rng.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") for _ in range(87)
    )
    return json.dumps(
        {
            "@context": [
                "https://www.w3.org/ns/credentials/v2",
                "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
            ],
            "id": f"urn:uuid:{credential_id}",
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "credentialSubject": {
                "type": ["AchievementSubject"],
                "achievement": {
                    "type": ["Achievement"],
                    "name": achievement,
                    "description": description,
                    "criteria": {"narrative": description * 12},
                },
            },
            "evidence": [{"type": ["Evidence"], "narrative": description * 12}],
            "proof": {
                "type": "DataIntegrityProof",
                "cryptosuite": "eddsa-rdfc-2022",
                "proofPurpose": "assertionMethod",
                "proofValue": signature,
            },
        },
        ensure_ascii=False,
    )


def tcpdf_record(request: CertificateRenderRequest) -> dict[str, str | list[str]]:
    return {
        "learner_name": request.learner_name,
        "course_name": request.course_name,
        "issued_on": request.issued_on.isoformat(),
        "awarding_body": request.awarding_body,
        "verification_code": request.verification_code,
        "verify_url": request.verify_url,
        "credential_id": request.credential_id,
        "achievement_name": request.achievement_name,
        "achievement_description": request.achievement_description,
        "learning_outcomes": request.learning_outcomes[:4],
        "workload": workload_line(request),
    }


# --- results ------------------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    engine: str
    certificates: int
    seconds: float
    note: str = ""
    cpu_seconds: float | None = None  # CPU time of the processes doing the work (user + system)

    @property
    def per_second(self) -> float:
        return self.certificates / self.seconds if self.seconds > 0 else 0.0

    @property
    def ms_each(self) -> float:
        return 1000 * self.seconds / self.certificates if self.certificates else 0.0

    @property
    def cpu_ms_each(self) -> float | None:
        """CPU time per certificate: what one core spends, whatever else the machine is doing."""
        if self.cpu_seconds is None or not self.certificates:
            return None
        return 1000 * self.cpu_seconds / self.certificates

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "seconds": round(self.seconds, 4),
            "per_second": round(self.per_second, 3),
            "ms_each": round(self.ms_each, 3),
            "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 4),
            "cpu_ms_each": None if self.cpu_ms_each is None else round(self.cpu_ms_each, 3),
        }


@dataclass
class Sameness:
    index: int
    learner_name: str
    pages: tuple[int, int]
    differing_share: float  # pixels where any channel differs at all
    over_threshold_share: float  # pixels where a channel differs by more than the threshold
    max_channel_difference: int
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        self.ok = self.pages == (1, 1) and self.over_threshold_share < float(TOLERANCE["max_share"])


def pdf_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"{index:04d}.pdf"


def check_outputs(out_dir: Path, count: int) -> str:
    """Every certificate written as a PDF; returns the median and mean sizes for the note."""
    files = sorted(out_dir.glob("*.pdf"))
    if len(files) != count:
        raise BenchError(f"{out_dir.name}: {len(files)} PDFs instead of {count}")
    for path in files:
        with path.open("rb") as pdf:
            if pdf.read(5) != b"%PDF-":
                raise BenchError(f"{path} is not a PDF")
    sizes = sorted(p.stat().st_size for p in files)
    median = (sizes[(count - 1) // 2] + sizes[count // 2]) / 2
    return f"PDFs median {median / 1024:.1f} KB, mean {sum(sizes) / count / 1024:.1f} KB"


# --- (a) naive WeasyPrint and (b) the renderer, in this process ---------------------------------------


def naive_render(request: CertificateRenderRequest, templates_dir: Path = TEMPLATES_DIR) -> bytes:
    """Everything from scratch, as a first WeasyPrint script would do it: one certificate per document."""
    env = Environment(loader=FileSystemLoader(templates_dir), autoescape=True, undefined=StrictUndefined)
    html = document_html(env, [request])
    base = templates_dir / request.template
    fonts = FontConfiguration()
    stylesheet = CSS(filename=str(base / "certificate.css"), font_config=fonts)
    document = HTML(string=html, base_url=f"{base}/")
    pdf: bytes = document.write_pdf(
        stylesheets=[stylesheet],
        font_config=fonts,
        attachments=credential_attachments(request),
        **NAIVE_PDF_OPTIONS,
    )
    return pdf


RenderMany = Callable[[Sequence[CertificateRenderRequest]], list[bytes]]


def one_by_one(render: Callable[[CertificateRenderRequest], bytes]) -> RenderMany:
    return lambda requests: [render(request) for request in requests]


def render_all(
    render: RenderMany, items: Sequence[tuple[int, CertificateRenderRequest]], out_dir: Path, batch: int
) -> tuple[float, float]:
    """Render `batch` certificates per call and write each to its own file; wall and CPU seconds."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        for (index, _), pdf in zip(chunk, render([request for _, request in chunk]), strict=True):
            pdf_path(out_dir, index).write_bytes(pdf)
    return time.perf_counter() - started, time.process_time() - cpu_started


def run_in_process(
    key: str,
    engine: str,
    render: RenderMany,
    batch: int,
    records: Sequence[CertificateRenderRequest],
    out_dir: Path,
) -> Row:
    log(f"{key}: {engine}, {len(records)} certificates")
    out_dir.mkdir(parents=True, exist_ok=True)
    render(records[:1])  # warm-up, not counted
    seconds, cpu = render_all(render, list(enumerate(records)), out_dir, batch)
    return Row(key, engine, len(records), seconds, check_outputs(out_dir, len(records)), cpu)


def run_naive(records: Sequence[CertificateRenderRequest], out_dir: Path) -> Row:
    return run_in_process("a", "naive WeasyPrint", one_by_one(naive_render), 1, records, out_dir)


def run_renderer(records: Sequence[CertificateRenderRequest], out_dir: Path) -> tuple[Row, Row]:
    """(b): a new renderer, which builds the skeleton of each shape as it first meets it; (b'): the same
    renderer on the same certificates again, every skeleton built (a flood of completions of a few rules)."""
    renderer = CertificateRenderer()
    first = run_in_process("b", "renderer, 1 process", renderer.render_batch, BATCH_SIZE, records, out_dir)
    skeletons = sum(1 for skeleton in renderer._skeletons._skeletons.values() if skeleton is not None)
    first.note = f"{skeletons} skeletons built in the loop" + (f"; {first.note}" if first.note else "")
    again = run_in_process(
        "b'", "renderer, skeletons built", renderer.render_batch, BATCH_SIZE, records, out_dir.with_name("b'")
    )
    full = sum(renderer.full_renders.values())
    again.note = f"{full} of {2 * len(records) + 2} rendered in full" + (
        f"; {again.note}" if again.note else ""
    )
    return first, again


def run_full(records: Sequence[CertificateRenderRequest], out_dir: Path) -> Row:
    """The renderer without skeletons: every certificate laid out by WeasyPrint."""
    renderer = CertificateRenderer(fast=False)
    return run_in_process("f", "renderer, full render", renderer.render_batch, BATCH_SIZE, records, out_dir)


# --- (b2) the renderer in W processes -----------------------------------------------------------------


def _worker(
    items: list[tuple[int, CertificateRenderRequest]],
    out_dir: str,
    barrier: Barrier,
    results: Queue[tuple[str, tuple[float, float] | str]],
) -> None:
    """One renderer process: start, warm up, wait for the others, render its share, report seconds."""
    try:
        renderer = CertificateRenderer()
        renderer.render(items[0][1])
        barrier.wait(WORKER_TIMEOUT)
        results.put(("ok", render_all(renderer.render_batch, items, Path(out_dir), BATCH_SIZE)))
    except Exception as error:  # reported to the parent, which fails the run
        barrier.abort()
        results.put(("error", f"{type(error).__name__}: {error}"))


def split(records: Sequence[CertificateRenderRequest], parts: int) -> list[list[tuple[int, Any]]]:
    """Contiguous shares, as equal as possible."""
    items = list(enumerate(records))
    size, extra = divmod(len(items), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(parts)]


def collect(results: Queue[tuple[str, tuple[float, float] | str]], workers: int) -> list[tuple[float, float]]:
    """Each worker's (wall, CPU) seconds of its render loop."""
    loops = []
    for _ in range(workers):
        status, value = results.get(timeout=WORKER_TIMEOUT)
        if status != "ok" or isinstance(value, str):
            raise BenchError(f"renderer worker failed: {value}")
        loops.append(value)
    return loops


def run_parallel(records: Sequence[CertificateRenderRequest], out_dir: Path, workers: int) -> Row:
    log(f"b2: renderer, {workers} processes, {len(records)} certificates")
    out_dir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers + 1), context.Queue()
    processes = [
        context.Process(target=_worker, args=(share, str(out_dir), barrier, results), daemon=True)
        for share in split(records, min(workers, len(records)))
    ]
    spawned = time.perf_counter()
    for process in processes:
        process.start()
    try:
        started = wait_for_workers(barrier, results, spawned)
        loops = collect(results, len(processes))
        seconds = time.perf_counter() - started
    finally:
        stop(processes)
    note = (
        f"start + warm-up {started - spawned:.1f} s not counted; worker loops "
        + ", ".join(f"{wall:.2f}" for wall, _ in loops)
        + f" s; {check_outputs(out_dir, len(records))}"
    )
    cpu = sum(cpu for _, cpu in loops)
    return Row("b2", f"renderer, {len(processes)} processes", len(records), seconds, note, cpu)


def wait_for_workers(
    barrier: Barrier, results: Queue[tuple[str, tuple[float, float] | str]], spawned: float
) -> float:
    try:
        barrier.wait(WORKER_TIMEOUT)
    except threading.BrokenBarrierError:
        _, value = results.get(timeout=5) if not results.empty() else ("error", "did not start")
        raise BenchError(f"renderer worker failed to start: {value}") from None
    log(f"b2: workers ready after {time.perf_counter() - spawned:.1f} s")
    return time.perf_counter()


def stop(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join()


# --- (c) TCPDF ----------------------------------------------------------------------------------------


def find_tcpdf() -> Path | None:
    candidates = [os.environ.get("TCPDF_PATH", ""), *TCPDF_CANDIDATES]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def tcpdf_missing() -> str | None:
    """Why TCPDF cannot run here, or None."""
    if shutil.which("php") is None:
        return "php not found (Debian: apt-get install php-cli php-mbstring php-tcpdf)"
    if find_tcpdf() is None:
        return "tcpdf.php not found (Debian: apt-get install php-tcpdf, or set TCPDF_PATH)"
    return None


def run_php(records_file: Path, out_dir: Path) -> tuple[float, float, dict[str, Any]]:
    """Wall and CPU seconds from starting php to its exit, and the script's own timing JSON."""
    env = {**os.environ, "TCPDF_PATH": str(find_tcpdf())}
    command = [shutil.which("php") or "php", str(PHP_SCRIPT), str(records_file), str(out_dir)]
    started, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if done.returncode != 0:
        raise BenchError(f"TCPDF script failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return seconds, cpu, json.loads(done.stdout.strip().splitlines()[-1])


def run_tcpdf(records: Sequence[CertificateRenderRequest], out_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    """Rows (c) whole php run and (c') the script's render loop alone, and the script's JSON."""
    log(f"c: TCPDF, {len(records)} certificates")
    out_dir.mkdir(parents=True, exist_ok=True)
    records_file = out_dir.parent / "tcpdf-records.json"
    records_file.write_text(json.dumps([tcpdf_record(r) for r in records], ensure_ascii=False), "utf-8")
    seconds, cpu, timing = run_php(records_file, out_dir)
    size = check_outputs(out_dir, len(records))
    note = f"PHP {timing['php_version']}, TCPDF {timing['tcpdf_version']}; {size}"
    start_note = f"php start + require tcpdf.php {timing['startup_s']:.2f} s not counted"
    return [
        Row("c", "TCPDF, php incl. start", len(records), seconds, note, cpu),
        Row("c'", "TCPDF, render loop only", len(records), float(timing["loop_s"]), start_note),
    ], timing


# --- visual sameness of (a) and (b) -------------------------------------------------------------------


def rasterize(pdf: Path, prefix: Path) -> list[Path]:
    subprocess.run(
        ["pdftoppm", "-r", str(DPI), "-png", str(pdf), str(prefix)], check=True, capture_output=True
    )
    return sorted(prefix.parent.glob(f"{prefix.name}-*.png"))


def pixel_difference(first: Path, second: Path) -> tuple[float, float, int]:
    """Share of pixels differing at all, share differing above the threshold, max channel difference."""
    with Image.open(first) as a, Image.open(second) as b:
        if a.size != b.size:
            return 1.0, 1.0, 255
        difference = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    per_pixel = reduce(ImageChops.lighter, difference.split())  # max over the channels
    histogram = per_pixel.histogram()
    total = sum(histogram)
    over = sum(histogram[int(TOLERANCE["channel_threshold"]) + 1 :])
    largest = max((value for value, n in enumerate(histogram) if n), default=0)
    return (total - histogram[0]) / total, over / total, largest


def compare_pages(index: int, name: str, naive_pdf: Path, renderer_pdf: Path, work: Path) -> Sameness:
    naive_pages = rasterize(naive_pdf, work / f"naive-{index:04d}")
    renderer_pages = rasterize(renderer_pdf, work / f"renderer-{index:04d}")
    pages = (len(naive_pages), len(renderer_pages))
    if not naive_pages or pages[0] != pages[1]:
        return Sameness(index, name, pages, 1.0, 1.0, 255)
    differences = [pixel_difference(a, b) for a, b in zip(naive_pages, renderer_pages, strict=True)]
    return Sameness(
        index,
        name,
        pages,
        max(d[0] for d in differences),
        max(d[1] for d in differences),
        max(d[2] for d in differences),
    )


def sample_indices(count: int) -> list[int]:
    """Three certificates: a short name, the first long one and the first of the smallest name size."""
    chosen = [i for i in dict.fromkeys((0, 2, 7, 1, 3)) if i < count]
    return chosen[:3]


def check_sameness(
    records: Sequence[CertificateRenderRequest], naive_dir: Path, renderer_dir: Path, work: Path
) -> list[Sameness]:
    if shutil.which("pdftoppm") is None:
        raise BenchError("pdftoppm not found (Debian: apt-get install poppler-utils)")
    log(f"comparing pages of (a) and (b) at {DPI} dpi")
    work.mkdir(parents=True, exist_ok=True)
    return [
        compare_pages(i, records[i].learner_name, pdf_path(naive_dir, i), pdf_path(renderer_dir, i), work)
        for i in sample_indices(len(records))
    ]


def byte_identical(first: Path, second: Path, count: int) -> bool:
    return all(pdf_path(first, i).read_bytes() == pdf_path(second, i).read_bytes() for i in range(count))


# --- report -------------------------------------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator > 0 else None


def ratios(rows: dict[str, Row], workers: int) -> dict[str, float | None]:
    a, b, b2 = rows["a"].per_second, rows["b"].per_second, rows["b2"].per_second
    result = {"(b)/(a)": ratio(b, a), "(b2)/(a)": ratio(b2, a), "(b2)/(b)": ratio(b2, b)}
    if "c" in rows:
        per_core = b2 / workers
        result["(b2 per core)/(c)"] = ratio(per_core, rows["c"].per_second)
        result["(b2 per core)/(c' loop only)"] = ratio(per_core, rows["c'"].per_second)
    return result


def cpu_ratios(rows: dict[str, Row]) -> dict[str, float | None]:
    """CPU ms per certificate of the other engine / of the renderer (1 process and W processes)."""
    result: dict[str, float | None] = {}
    pairs = (("a", "b"), ("a", "b2"), ("c", "b"), ("c", "b2"), ("a", "b'"), ("c", "b'"), ("f", "b'"))
    for other, mine in pairs:
        if other in rows and rows[other].cpu_ms_each and rows[mine].cpu_ms_each:
            result[f"({other})/({mine})"] = ratio(rows[other].cpu_ms_each or 0, rows[mine].cpu_ms_each or 0)
    return result


def machine(tcpdf: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "weasyprint": weasyprint.__version__,
        "php": tcpdf["php_version"] if tcpdf else None,
        "tcpdf": tcpdf["tcpdf_version"] if tcpdf else None,
        "load_average_before": round(LOAD_BEFORE, 2),
    }


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    php = f"PHP {m['php']}, TCPDF {m['tcpdf']}" if m["php"] else f"TCPDF skipped: {report['tcpdf_skipped']}"
    lines = [
        f"certificate render benchmark: {m['cpus']} CPUs, Python {m['python']}, "
        f"WeasyPrint {m['weasyprint']}, {php}",
        f"run took {report['run_seconds']:.0f} s; load average before it {m['load_average_before']}",
        "",
        f"{'':6}{'engine':28}{'certificates':>13}{'seconds':>10}{'per second':>12}{'ms each':>10}"
        f"{'CPU ms each':>13}",
    ]
    for row in report["rows"]:
        cpu = "" if row["cpu_ms_each"] is None else f"{row['cpu_ms_each']:.1f}"
        lines.append(
            f"{'(' + row['key'] + ')':6}{row['engine']:28}{row['certificates']:>13}"
            f"{row['seconds']:>10.2f}{row['per_second']:>12.1f}{row['ms_each']:>10.1f}{cpu:>13}"
        )
        if row["note"]:
            lines.append(f"{'':6}{row['note']}")
    lines += ["", "ratios of certificates per second:"]
    lines += [f"  {name:30} x{value}" for name, value in report["ratios"].items()]
    lines += ["ratios of CPU time per certificate (how many of the renderer's certificates one core makes"]
    lines += ["in the time the other engine makes one):"]
    lines += [f"  {name:30} x{value}" for name, value in report["cpu_ratios"].items()]
    return "\n".join(lines + sameness_lines(report))


def sameness_lines(report: dict[str, Any]) -> list[str]:
    tolerance = report["tolerance"]
    lines = [
        "",
        f"(a) vs (b) pages at {DPI} dpi (tolerance: < {tolerance['max_share']:.1%} of pixels "
        f"differ by more than {tolerance['channel_threshold']}/255):",
    ]
    for s in report["sameness"]:
        lines.append(
            f"  #{s['index']:<4} {s['learner_name'][:44]:44} pages {s['pages'][0]}/{s['pages'][1]}  "
            f"differing {s['differing_share']:.4%}  >{tolerance['channel_threshold']}: "
            f"{s['over_threshold_share']:.4%}  max {s['max_channel_difference']}  "
            f"{'ok' if s['ok'] else 'FAIL'}"
        )
    lines.append(f"  (b2) PDFs byte-identical to (b): {'yes' if report['b2_identical_to_b'] else 'no'}")
    return lines


# --- main ---------------------------------------------------------------------------------------------


def median_row(rounds: list[Row]) -> Row:
    """The round with the median time, noting every round's: a slow moment of the VM moves one round."""
    chosen = sorted(rounds, key=lambda row: row.seconds)[len(rounds) // 2]
    if len(rounds) > 1:
        times = ", ".join(f"{row.seconds:.2f}" for row in rounds) + " s"
        if all(row.cpu_ms_each is not None for row in rounds):
            times += " (CPU ms each " + ", ".join(f"{row.cpu_ms_each:.1f}" for row in rounds) + ")"
        chosen.note = f"{chosen.note}; rounds {times}, median shown" if chosen.note else f"rounds {times}"
    return chosen


def run(count: int, workers: int, work: Path, rounds: int = 1) -> dict[str, Any]:
    started = time.monotonic()
    records = make_records(count)
    measured: dict[str, list[Row]] = {"a": [], "b": [], "b2": [], "b'": [], "f": []}
    for round_number in range(1, rounds + 1):  # interleaved, so a slow spell hits every engine alike
        log(f"round {round_number}/{rounds}")
        measured["a"].append(run_naive(records, work / "a"))
        first, again = run_renderer(records, work / "b")
        measured["b"].append(first)
        measured["b'"].append(again)
        measured["b2"].append(run_parallel(records, work / "b2", workers))
        measured["f"].append(run_full(records, work / "f"))
    rows = [median_row(measured[key]) for key in ("a", "b", "b2", "b'", "f")]
    skipped, timing = tcpdf_missing(), None
    if skipped is None:
        tcpdf_rows, timing = run_tcpdf(records, work / "c")
        rows += tcpdf_rows
    else:
        log(f"c: skipped, {skipped}")
    sameness = check_sameness(records, work / "a", work / "b", work / "png")
    by_key = {row.key: row for row in rows}
    return {
        "machine": machine(timing),
        "count": count,
        "workers": workers,
        "rounds": rounds,
        "tcpdf_skipped": skipped,
        "rows": [row.as_json() for row in rows],
        "ratios": ratios(by_key, workers),
        "cpu_ratios": cpu_ratios(by_key),
        "tolerance": TOLERANCE,
        "sameness": [asdict(s) for s in sameness],
        "b2_identical_to_b": byte_identical(work / "b", work / "b2", count),
        "ok": all(s.ok for s in sameness),
        "run_seconds": round(time.monotonic() - started, 1),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    # A slow moment of one vCPU can move a (b2) run of a few seconds by 30 %: several interleaved rounds,
    # long enough each, and the median.
    parser.add_argument("--count", type=int, default=200, help="certificates per engine (default 200)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of (a), (b), (b2); the median round is shown (default 3)",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for (b2) (default 2)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, the table on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the PDFs and page images, print where")
    args = parser.parse_args(argv)
    if args.count < 1 or args.workers < 1 or args.rounds < 1:
        parser.error("--count, --workers and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="render-bench-"))
    try:
        report = run(args.count, args.workers, work, args.rounds)
    except BenchError as error:
        log(f"error: {error}")
        return 2
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(report), file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    if not report["ok"]:
        log("pages of (a) and (b) differ beyond the tolerance")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
