"""Smoke test of bench/import_benchmark.py: every format imported twice, and the report's shape."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"

EXPECTED_STATUS = {
    "ob3-json": "signature valid but issuer not known",
    "ob3-jwt": "signature valid but issuer not known",
    "ob3-png": "signature valid but issuer not known",
    "ob3-svg": "signature valid but issuer not known",
    "ob2-json": "not verifiable",
    "europass-edc": "signature valid but issuer not known",
    "pdf": "verified",
    "image": "not verifiable",
}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    for tool in ("pdftoppm", "pdftotext", "prlimit"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: poppler-utils, util-linux)")
    sys.path.insert(0, str(BENCH_DIR))
    import import_benchmark

    return import_benchmark


def test_report_on_two_imports_per_format(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--count", "2", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert [row["format"] for row in report["rows"]] == list(EXPECTED_STATUS)
    for row in report["rows"]:
        assert row["imports"] == 2 and row["source_format"] == row["format"]
        assert row["seconds"] > 0 and row["per_second"] > 0 and row["ms_each"] > 0
        assert row["same_status"] and row["expected_source"]
    assert {row["format"]: row["status"] for row in report["rows"]} == EXPECTED_STATUS
    assert report["ratios"]["ob3-json"] == 1.0 and report["ok"]
    assert "imports per second relative to ob3-json" in captured.err  # the table, on stderr with --json


def test_a_subset_of_formats_and_the_slow_count(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--count", "3", "--slow-count", "1", "--formats", "ob2-json,image"]) == 0
    out = capsys.readouterr().out
    assert "ob2-json" in out and "image" in out and "ob3-json" not in out
    assert "relative to ob3-json" not in out  # no base row, no ratios
    with pytest.raises(SystemExit):
        bench.parse_args(["--formats", "docx"])


def test_the_worst_case_json_ld_section(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--count", "1", "--formats", "ob2-json", "--worst-jsonld", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    rows = {row["input"]: row for row in report["worst_jsonld"]}
    assert len(rows) >= 10 and all(row["input_bytes"] <= 10 * 1024 * 1024 for row in rows.values())
    for name, row in rows.items():
        assert row["seconds"] > 0 and row["peak_mib"] >= row["before_mib"] > 0, name
        if name.startswith("bomb "):
            assert row["verdict"].startswith("rejected: "), row
    assert "worst-case JSON-LD" in captured.err and "slowest:" in captured.err
