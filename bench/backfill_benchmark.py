"""A backfill of N historical completions while live completions flow: does the backfill starve them?

    .venv/bin/python bench/backfill_benchmark.py [--events 100000] [--live-rate 10] [--issuers 1]
                                                 [--renderers 2] [--certificates | --no-certificates]
                                                 [--single-lane] [--render-backlog 50] [--window 60]
                                                 [--json] [--keep]

The historical completions go to `moodle.events.backfill` through the gateway's own publisher, as
`ebackpack gateway backfill` and `ebackpack gateway import` publish them (`MoodleEventPublisher(backfill=
True)`), all at once: the worst case, a backlog of N. Meanwhile live completions go to `moodle.events` at
a steady `--live-rate` (the poller's publisher) until the backfill is done. Every completion is a
distinct (learner, course) pair of a course whose rule issues a certificate (unless --no-certificates),
so each earns one credential and one PDF.

The report gives the backfill's duration (first publish to its last award, credential event and PDF),
and the live completions' latency from publish to their credential.issued event and to their PDF stored.
`--single-lane` publishes the backfill on `moodle.events` instead, as before the lanes existed: the
anchor to compare the live latency with. `--render-backlog` is the issuer's `backfill_render_backlog`.

Progress goes to stderr, the report to stdout (one JSON object with `--json`). See bench/README.md,
section "Backfill beside live events".
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    CLOCK,
    LOAD_BEFORE,
    BenchError,
    Report,
    add_broker_storage_option,
    add_worker_options,
    broker_storage,
    run_benchmark,
    say,
)
from load_benchmark import (
    WARMUP,
    Completions,
    Counts,
    Outcome,
    Plan,
    check_alive,
    collect,
    count_rows,
    pipeline_workers,
    rules_and_courses,
    run_settings,
    spread,
    stack_settings,
    store_learners,
    warm_up,
)
from sqlalchemy import func, select

from ebackpack.adapters.persistence.tables import AwardRow, CertificateRow, OutboxRow
from ebackpack.bootstrap import prepare
from ebackpack.config import Settings
from ebackpack.dev.stack import EmbeddedStack, StackError
from ebackpack.dev.workers import Worker, running
from ebackpack.streaming.topics import CREDENTIALS
from services.gateway.publisher import MoodleEventPublisher

CHUNK = 5000  # historical completions handed to the publisher in one call
SAY_EVERY = 5.0


@dataclass
class Live:
    """The live completions: (index in the plan, wall clock when handed to the producer)."""

    sent: list[tuple[int, float]] = field(default_factory=list)
    error: BaseException | None = None


def publish_history(publisher: MoodleEventPublisher, completions: Completions, plan: Plan, n: int) -> float:
    """The N historical completions (plan indexes 0..n-1), acknowledged; returns the seconds it took."""
    started = time.monotonic()
    for start in range(0, n, CHUNK):
        publisher.publish([completions.message(*plan.pair(i)) for i in range(start, min(start + CHUNK, n))])
    return time.monotonic() - started


def publish_live(
    publisher: MoodleEventPublisher,
    completions: Completions,
    plan: Plan,
    first: int,
    rate: float,
    stop: threading.Event,
    live: Live,
) -> None:
    """One completion every 1/rate seconds (plan indexes from `first`), each acknowledged, until `stop`.
    `completions` is this thread's own (it counts a serial)."""
    try:
        start = time.monotonic()
        index = 0
        while not stop.is_set() and first + index < plan.total:
            due = start + index / rate
            if stop.wait(max(0.0, due - time.monotonic())):
                break
            message = completions.message(*plan.pair(first + index))
            sent = time.time()
            publisher.publish([message])
            live.sent.append((first + index, sent))
            index += 1
    except BaseException as exc:  # reported by the main thread
        live.error = exc


def history_counts(sessions: Any, settings: Settings, below: int) -> Counts:
    """Awards, announced credential events and PDFs of the historical learners (ids below `below`)."""
    with sessions() as s:
        ours = select(AwardRow.credential_id).where(AwardRow.learner_id < below)
        awards = s.scalar(select(func.count()).select_from(AwardRow).where(AwardRow.learner_id < below))
        sent = s.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(
                OutboxRow.topic == settings.topic(CREDENTIALS),
                OutboxRow.sent_at.is_not(None),
                OutboxRow.credential_id.in_(ours),
            )
        )
        pdfs = s.scalar(
            select(func.count(func.distinct(CertificateRow.credential_id))).where(
                CertificateRow.credential_id.in_(ours)
            )
        )
    return Counts(awards or 0, sent or 0, pdfs or 0)


def wait_until_done(
    count: Callable[[], Counts], wanted: Counts, workers: list[Worker], timeout: float, what: str
) -> bool:
    """Until `count()` reaches `wanted` (awards, announced credential events, PDFs); False on timeout."""
    deadline = time.monotonic() + timeout
    last_say = 0.0
    while True:
        counts = count()
        if counts.awards >= wanted.awards and counts.sent >= wanted.sent and counts.pdfs >= wanted.pdfs:
            return True
        check_alive(workers, f"during {what}")
        if time.monotonic() > deadline:
            say(f"{what}: not done after {timeout:.0f} s: {counts}; reporting what was done")
            return False
        if time.monotonic() - last_say > SAY_EVERY:
            last_say = time.monotonic()
            say(
                f"  {what}: awards {counts.awards}/{wanted.awards}, credential events "
                f"{counts.sent}/{wanted.sent}, PDFs {counts.pdfs}/{wanted.pdfs}"
            )
        time.sleep(1.0)


def figures(
    args: argparse.Namespace,
    plan: Plan,
    outcome: Outcome,
    history_started: float,
    history_publish_seconds: float,
    live: Live,
    complete: bool,
) -> dict[str, Any]:
    n = args.events
    ends: dict[str, list[float]] = {"award": [], "event": [], "pdf": []}
    missing = 0
    for i in range(n):
        found = outcome.award_at.get(plan.pair(i))
        if found is None:
            missing += 1
            continue
        cid, awarded = found
        ends["award"].append(awarded)
        if cid in outcome.issued_at:
            ends["event"].append(outcome.issued_at[cid])
        if plan.needs_pdf(i) and cid in outcome.pdf_at:
            ends["pdf"].append(outcome.pdf_at[cid])
    history_done = max((max(v) for v in ends.values() if v), default=history_started)
    seconds = history_done - history_started
    phases = {"before": (-math.inf, history_started), "during": (history_started, history_done)}
    phases["after"] = (history_done, math.inf)
    latency: dict[str, dict[str, list[float]]] = {p: {"award": [], "event": [], "pdf": []} for p in phases}
    by_window: dict[int, list[float]] = {}  # live to award, by publish time since the backfill began
    live_missing = 0
    for index, sent in live.sent:
        found = outcome.award_at.get(plan.pair(index))
        if found is None:
            live_missing += 1
            continue
        phase = next(p for p, (start, end) in phases.items() if start <= sent < end)
        cid, awarded = found
        latency[phase]["award"].append(awarded - sent)
        if phase == "during":
            by_window.setdefault(int((sent - history_started) // args.window), []).append(awarded - sent)
        if cid in outcome.issued_at:
            latency[phase]["event"].append(outcome.issued_at[cid] - sent)
        if plan.needs_pdf(index) and cid in outcome.pdf_at:
            latency[phase]["pdf"].append(outcome.pdf_at[cid] - sent)
    return {
        "events": n,
        "lane": "moodle.events (single lane, the anchor)" if args.single_lane else "moodle.events.backfill",
        "live_rate": args.live_rate,
        "issuers": args.issuers,
        "renderers": args.renderers,
        "certificates": args.certificates,
        "render_backlog": args.render_backlog,
        "complete": complete and missing == 0,
        "backfill": {
            "publish_seconds": round(history_publish_seconds, 1),
            "seconds": round(seconds, 1),
            "per_second": round(n / seconds, 1) if seconds > 0 else 0.0,
            "awards": len(ends["award"]),
            "events": len(ends["event"]),
            "pdfs": len(ends["pdf"]),
            "minutes_for_100k": round(100_000 / (n / seconds) / 60, 1) if seconds > 0 and n else None,
        },
        "live": {
            "published": len(live.sent),
            "not_issued": live_missing,
            **{
                phase: {
                    "to_award": spread(ends_of["award"]),
                    "to_credential_event": spread(ends_of["event"]),
                    "to_pdf": spread(ends_of["pdf"]),
                }
                for phase, ends_of in latency.items()
            },
            "during_by_window": {
                f"{w * args.window:.0f}-{(w + 1) * args.window:.0f} s": spread(values)
                for w, values in sorted(by_window.items())
            },
        },
        "load_before": round(LOAD_BEFORE, 2),
        "run_seconds": round(time.monotonic() - CLOCK, 1),
    }


def text_report(r: dict[str, Any]) -> str:
    b, live = r["backfill"], r["live"]

    def row(name: str, s: dict[str, float]) -> str:
        figures = f"p50 {s['p50']:7.3f} s  p99 {s['p99']:7.3f} s  max {s['max']:7.3f} s"
        return f"  {name:<22} {s['count']:>6}  {figures}"

    lines = [
        f"backfill of {r['events']} completions on {r['lane']}, live at {r['live_rate']:g}/s; "
        f"{r['issuers']} issuer(s), {r['renderers']} renderer(s), "
        f"certificates {'on' if r['certificates'] else 'off'}, "
        f"render backlog {r['render_backlog']}",
        f"backfill: published in {b['publish_seconds']} s; done (every award, credential event"
        + (", PDF" if r["certificates"] else "")
        + f") in {b['seconds']} s = {b['per_second']}/s"
        + (f" (100,000 at this rate: {b['minutes_for_100k']} min)" if b["minutes_for_100k"] else ""),
        f"live: {live['published']} published, {live['not_issued']} not issued; latency from publish:",
    ]
    for phase in ("before", "during", "after"):
        lines.append(f" published {phase} the backfill:")
        lines.append(row("to award saved", live[phase]["to_award"]))
        lines.append(row("to credential event", live[phase]["to_credential_event"]))
        if r["certificates"]:
            lines.append(row("to PDF stored", live[phase]["to_pdf"]))
    lines.append(" published during the backfill, by publish time after it began, to award saved:")
    lines += [row(window, spread_of) for window, spread_of in live["during_by_window"].items()]
    if not r["complete"]:
        lines.append("INCOMPLETE: not everything was issued within the timeout")
    lines.append(f"load average before: {r['load_before']}; run {r['run_seconds']} s")
    return "\n".join(lines)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="ebackpack-backfill-"))
        if args.keep:
            say(f"data dir (kept): {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        rules_file, courses, pdf_courses = rules_and_courses(tmp, args.certificates)
        live_most = math.ceil(args.live_rate * (args.timeout + args.before + args.after + 10)) + 1
        # Plan indexes 0..events-1 are the history, from first_live on live (learners of their own);
        # every pair distinct.
        first_live = math.ceil(args.events / len(courses)) * len(courses)
        plan = Plan(1.0, float(first_live + live_most), courses, pdf_courses)
        completions = Completions()
        completions.check(*plan.pair(0))
        stack = stack_settings(tmp)
        say(f"starting Tansu on {stack.kafka_bootstrap} and SeaweedFS S3 on {stack.s3_endpoint}")
        cleanup.enter_context(EmbeddedStack(stack, broker_storage=broker_storage(args)))
        settings = run_settings(stack, tmp, rules_file).model_copy(
            update={"backfill_render_backlog": args.render_backlog}
        )
        sessions = prepare(settings)
        say(f"storing {plan.learners + WARMUP} learner profiles")
        store_learners(sessions, plan)
        workers, groups = pipeline_workers(settings, args.issuers, args.renderers)
        say(f"starting {args.issuers} issuer(s) and {args.renderers} renderer(s); warming up")
        cleanup.enter_context(running(workers))
        live_publisher = cleanup.enter_context(closing(MoodleEventPublisher(settings)))
        history_publisher = cleanup.enter_context(
            closing(MoodleEventPublisher(settings, backfill=not args.single_lane))
        )
        baseline = warm_up(
            settings, plan, completions, live_publisher, sessions, workers, groups, args.timeout
        )

        live, stop = Live(), threading.Event()
        thread = threading.Thread(
            target=publish_live,
            args=(live_publisher, Completions(), plan, first_live, args.live_rate, stop, live),
            daemon=True,
        )
        say(f"live completions at {args.live_rate:g}/s; publishing {args.events} historical completions")
        thread.start()
        time.sleep(args.before)  # live latency before the backfill: the anchor in the same run
        history_started = time.time()
        publish_seconds = publish_history(history_publisher, completions, plan, args.events)
        say(f"backfill published in {publish_seconds:.1f} s; waiting until it is done")
        need_pdf = sum(1 for i in range(args.events) if plan.needs_pdf(i))
        below = plan.pair(first_live)[0]  # the historical learners' ids are below the live ones'
        complete = wait_until_done(
            lambda: history_counts(sessions, settings, below),
            Counts(args.events, args.events, need_pdf),
            workers,
            args.timeout,
            "backfill",
        )
        time.sleep(args.after)  # live latency after the backfill: the anchor in the same run
        stop.set()
        thread.join(timeout=30)
        if live.error is not None:
            raise BenchError(f"live publishing failed: {live.error!r}")
        sent = list(live.sent)
        live_pdfs = sum(1 for index, _s in sent if plan.needs_pdf(index))
        wait_until_done(
            lambda: count_rows(sessions, settings.topic(CREDENTIALS)) - baseline,
            Counts(args.events + len(sent), args.events + len(sent), need_pdf + live_pdfs),
            workers,
            300,
            "the last live completions",
        )
        outcome = collect(settings, sessions, plan)
        say("stopping workers and the stack")
        return figures(args, plan, outcome, history_started, publish_seconds, live, complete)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="historical completions to backfill")
    parser.add_argument("--live-rate", type=float, default=10.0, help="live completions per second meanwhile")
    add_worker_options(parser, "completions of courses whose rule issues a PDF (default), or badges only")
    parser.add_argument(
        "--single-lane",
        action="store_true",
        help="the backfill on moodle.events, as before the lanes: the anchor for the live latency",
    )
    parser.add_argument(
        "--render-backlog", type=int, default=50, help="the issuer's backfill_render_backlog (0: no brake)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds the backfill may take")
    parser.add_argument(
        "--before", type=float, default=20.0, help="seconds of live completions before the backfill starts"
    )
    parser.add_argument(
        "--after", type=float, default=20.0, help="seconds of live completions after the backfill is done"
    )
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds per row of the live latency during the backfill"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (report to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs, DB) afterwards")
    add_broker_storage_option(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.events <= 1_000_000 or not 0 < args.live_rate <= 100:
        parser.error("need 1 <= --events <= 1,000,000 and 0 < --live-rate <= 100")
    if not 1 <= args.issuers <= 8 or not 0 <= args.renderers <= 8:
        parser.error("need 1 <= --issuers <= 8 and 0 <= --renderers <= 8")
    if args.certificates and args.renderers < 1:
        parser.error("--certificates needs --renderers >= 1")
    if not 0 <= args.render_backlog <= 1_000_000 or not 0 < args.timeout <= 86_400:
        parser.error("need 0 <= --render-backlog <= 1,000,000 and 0 < --timeout <= 86400")
    if not 1 <= args.window <= 3600:
        parser.error("need 1 <= --window <= 3600")
    if not 0 <= args.after <= 600 or not 0 <= args.before <= 600:
        parser.error("need 0 <= --before, --after <= 600")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> Report:
        report = benchmark(args)
        return text_report(report), json.dumps(report, ensure_ascii=False)

    return run_benchmark("backfill benchmark", work, args.json, (StackError,))


if __name__ == "__main__":
    sys.exit(main())
