"""Smoke test of bench/load_benchmark.py: four seconds at 5 completions/s through the whole pipeline
(its own embedded stack, one issuer, two renderers), the report's shape, and every published completion
accounted for."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    pytest.importorskip("psutil", reason="the load benchmark samples memory with psutil")
    sys.path.insert(0, str(BENCH_DIR))
    import load_benchmark

    return load_benchmark


def test_plan_gives_distinct_pairs_and_warmup_learners_apart(bench: ModuleType) -> None:
    plan = bench.Plan(rate=7, seconds=3, courses=(42, 43), pdf_courses=frozenset({42, 43}))
    pairs = [plan.pair(i) for i in range(plan.total)]
    assert plan.total == 21 and len(set(pairs)) == 21 and plan.learners == 11
    warmup = [plan.warmup_pair(i) for i in range(bench.WARMUP)]
    assert not {learner for learner, _c in warmup} & {learner for learner, _c in pairs}
    assert all(plan.needs_pdf(i) for i in range(plan.total))
    assert [bench.percentile([1.0, 2.0, 3.0, 4.0], p) for p in (50, 90, 99)] == [2.0, 4.0, 4.0]


def test_options_are_checked(bench: ModuleType) -> None:
    for argv in (["--renderers", "0"], ["--rate", "0"], ["--rate", "5000", "--seconds", "3600"]):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
    args = bench.parse_args(["--no-certificates", "--renderers", "0"])
    assert not args.certificates and args.rate == 100 and args.seconds == 300


@pytest.mark.integration
def test_a_few_seconds_at_a_low_rate(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--rate", "5", "--seconds", "4", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert {
        "machine",
        "config",
        "publish",
        "accounting",
        "latency_seconds",
        "end_times",
        "throughput",
        "backlog",
        "sustained",
        "sustainable_rate",
        "bottleneck",
        "stages",
        "windows",
        "processes",
        "machine_cpu_busy_percent",
    } <= report.keys()
    assert report["config"] | {"rate": 5, "seconds": 4, "issuers": 1, "renderers": 2} == report["config"]

    # Every published completion accounted for: one award, one credential event, one stored PDF each.
    counts, published = report["accounting"], report["publish"]["published"]
    assert 15 <= published <= 20  # 5/s for 4 s, fewer only if the broker's acks were very slow
    for key in (
        "awarded",
        "credential_events",
        "marked_sent",
        "need_pdf",
        "pdfs_stored",
        "rendered_events",
        "completed",
    ):
        assert counts[key] == published, key
    assert counts["credential_events_total"] >= published  # the outbox relay may announce one twice
    assert counts["incomplete"] == 0 and counts["dead_letters"] == 0
    assert report["backlog"]["drained"] and report["backlog"]["drain_seconds"] is not None
    assert sum(w["published"] for w in report["windows"]) == published
    assert sum(w["completed"] for w in report["windows"]) == published

    for name in ("end_to_end", "credential_event", "pdf_stored", "award_stored"):
        figures = report["latency_seconds"][name]
        assert figures["count"] == published, name
        assert 0 < figures["p50"] <= figures["p90"] <= figures["p99"] <= figures["max"], name
    end_to_end = report["latency_seconds"]["end_to_end"]
    assert end_to_end["max"] >= report["latency_seconds"]["pdf_stored"]["max"]
    assert report["publish"]["achieved_rate"] > 0
    assert report["throughput"]["completions_per_second_overall"] > 0

    processes = {p["name"]: p for p in report["processes"]}
    assert set(processes) == {"issuer-1", "renderer-1", "renderer-2", "tansu", "seaweedfs", "benchmark"}
    for p in processes.values():
        assert 0 < p["rss_start_mb"] <= p["rss_peak_mb"] and p["rss_end_mb"] <= p["rss_peak_mb"]
        assert p["cpu_seconds"] >= 0 and not p["exited"]
        assert p["rss_series_mb"][0] == [0, p["rss_start_mb"]] and len(p["rss_series_mb"]) >= 2
    assert "verdict" in captured.err and "latency (s)" in captured.err  # the table, on stderr with --json
