"""Smoke test of bench/web_benchmark.py: one second of load per URL, and the report's shape."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"

WRK_REPORT = """Running 10s test @ http://127.0.0.1:41234/verify/ABCD-EFGH-JKLM
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.34ms    3.21ms   1.02s    91.20%
    Req/Sec   650.12     80.45   800.00     70.00%
  Latency Distribution
     50%  850.00us
     75%   13.00ms
     90%   14.50ms
     99%    1.50s
  12987 requests in 10.01s, 30.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   1297.40
Transfer/sec:      3.01MB
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH_DIR))
    import web_benchmark

    return web_benchmark


def test_parses_wrk_latency_report(bench: ModuleType) -> None:
    figures = bench.parse_wrk(WRK_REPORT)
    assert figures["requests"] == 12987 and figures["seconds"] == pytest.approx(10.01)
    assert figures["requests_per_second"] == pytest.approx(1297.40)
    assert figures["latency_ms"] == pytest.approx(
        {"avg": 12.34, "max": 1020.0, "p50": 0.85, "p75": 13.0, "p90": 14.5, "p99": 1500.0}
    )
    assert figures["non_2xx_3xx"] == 7
    assert figures["socket_errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 1}
    assert figures["transfer_per_second"] == "3.01MB"


def test_one_second_per_url(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (Debian: apt-get install wrk)")
    if bench.nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    argv = [
        "--duration",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--connections",
        "2",
        "--calls",
        "20",
        "--json",
    ]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["key"]: row for row in report["rows"]}
    assert list(rows) == ["nginx", "verify-html", "verify-json", "verify-304", "static", "verify-nocache"]
    # the anchor serves a file of exactly the page's size; the revalidation is answered 304, no body
    assert (
        rows["nginx"]["body_bytes"]
        == rows["verify-html"]["body_bytes"]
        == rows["verify-nocache"]["body_bytes"]
    )
    assert rows["nginx"]["ratio_to_nginx"] == 1.0 and rows["verify-html"]["ratio_to_nginx"] > 0
    assert rows["verify-304"]["status"] == 304 and rows["verify-304"]["body_bytes"] == 0
    assert rows["static"]["path"] in ("/static/app.css", "/healthz")
    assert (report["static_note"] is None) == (rows["static"]["path"] == "/static/app.css")
    assert rows["verify-html"]["content_type"].startswith("text/html")
    assert rows["verify-json"]["content_type"].startswith("application/json")
    for row in rows.values():
        assert row["status"] == 200 and row["body_bytes"] > 0 or row["key"] == "verify-304"
        assert row["requests"] > 0 and row["requests_per_second"] > 0
        assert 0.5 < row["seconds"] < 5
        latency = row["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert row["non_2xx_3xx"] == 0  # the rate limit is lifted for the benchmark
        assert row["server_cpu"] > 0 and row["server_cpu_ms_per_request"] > 0 and row["other_cpu"] >= 0
    assert rows["static"]["ratio_to_static"] == 1.0
    assert report["awards"] > 0 and report["code"] in rows["verify-html"]["path"]
    parts = report["parts"]
    assert set(parts["asgi_ms"]) == {"verify-html", "verify-json", "static", "healthz"}
    assert all(ms["wall"] > 0 and ms["cpu"] > 0 for ms in parts["asgi_ms"].values())
    assert parts["sql_statements_per_verify"] >= 1
    assert parts["verify_ms"] > 0 and parts["render_html_ms"] > 0
