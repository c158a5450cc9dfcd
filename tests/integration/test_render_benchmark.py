"""Smoke test of bench/render_benchmark.py: every engine on two certificates, and the report's shape."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is not installed (Debian: poppler-utils)")
    # On sys.path (not loaded from its file) so the spawned (b2) workers can import it too.
    sys.path.insert(0, str(BENCH_DIR))
    import render_benchmark

    return render_benchmark


def test_report_on_two_certificates(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--count", "2", "--rounds", "2", "--workers", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    keys = [row["key"] for row in report["rows"]]
    assert keys[:5] == ["a", "b", "b2", "b'", "f"]
    assert keys[5:] in ([], ["c", "c'"])
    for row in report["rows"]:
        assert row["certificates"] == 2
        assert row["seconds"] > 0 and row["per_second"] > 0 and row["ms_each"] > 0
        if row["key"] in ("a", "b", "b2", "b'", "f"):
            assert "rounds " in row["note"]  # both rounds' times, the median's shown
    assert {"(b)/(a)", "(b2)/(a)"} <= report["ratios"].keys()
    assert [s["index"] for s in report["sameness"]] == [0, 1]  # no #2 and #7 among 2 certificates
    assert all(s["pages"] == [1, 1] and s["ok"] for s in report["sameness"]) and report["ok"]
    assert report["b2_identical_to_b"]


def test_tcpdf_writes_one_page_per_certificate(bench: ModuleType, tmp_path: Path) -> None:
    missing = bench.tcpdf_missing()
    if missing:
        pytest.skip(missing)
    records = bench.make_records(3)[1:]  # a short name and the long "Zażółć Gęślą-Jaźń ..."
    rows, timing = bench.run_tcpdf(records, tmp_path / "c")
    assert [row.key for row in rows] == ["c", "c'"] and timing["count"] == 2
    for index in range(2):
        pages = bench.rasterize(bench.pdf_path(tmp_path / "c", index), tmp_path / f"page-{index}")
        assert len(pages) == 1
