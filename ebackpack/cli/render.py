"""The operator tools' answers as rich tables for the terminal (`ebackpack status`, `deadletters`)."""

from __future__ import annotations

import base64
from datetime import UTC
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from ebackpack.ops.deadletters import DeadLetterView, Inspection
from ebackpack.ops.status import Status
from ebackpack.streaming.offset_guard import recent_resets


def render_status(state: Status) -> Group:
    """The status as rich tables (topics, consumer groups, dead letters) and notes."""
    topics = _table(
        f"Topics on {state.bootstrap} at {state.taken_at:%Y-%m-%d %H:%M:%S} UTC",
        ["topic", "partitions", "messages", "end offsets", "last minute"],
        right={"partitions", "messages", "last minute"},
    )
    for ts in state.topics:
        if not ts.exists:
            topics.add_row(ts.topic, "-", "-", "[red]missing[/red]", "-")
            continue
        last = "?" if ts.last_minute is None else str(ts.last_minute)
        topics.add_row(
            ts.topic,
            str(len(ts.partitions)),
            str(ts.messages),
            " ".join(f"{p.partition}:{p.end}" for p in ts.partitions),
            last,
        )
    topics.caption = f"last minute: {state.rate_method}"

    groups = _table(
        "Consumer groups",
        ["group", "role", "topic", "committed", "end", "lag"],
        right={"committed", "end", "lag"},
    )
    for g in state.groups:
        if not g.topics:
            groups.add_row(g.group, g.role, "-", "-", "-", "-" if g.started else "[dim]not started[/dim]")
        for i, t in enumerate(g.topics):
            committed = str(t.committed) if any(p.committed is not None for p in t.partitions) else "-"
            lag = f"[yellow]{t.lag}[/yellow]" if t.lag else "0"
            if t.beyond_end:
                lag = (
                    "[red]beyond end: "
                    + ", ".join(f"{p.partition}:{p.committed}>{p.end}" for p in t.beyond_end)
                    + "[/red]"
                )
            groups.add_row(
                g.group if i == 0 else "", g.role if i == 0 else "", t.topic, committed, str(t.end), lag
            )

    dead = _table(
        "Dead letters", ["topic", "dead letters", "not replayed"], right={"dead letters", "not replayed"}
    )
    for d in state.dead_letters:
        pending = f"[red]{d.not_replayed}[/red]" if d.not_replayed else "0"
        dead.add_row(d.topic, str(d.total), pending)
    dead.caption = "ebackpack deadletters list | inspect | replay"
    return Group(topics, groups, dead, *state.notes)


def _table(title: str, columns: list[str], right: set[str]) -> Table:
    """A table titled on the left, its `columns` justified left but those in `right`."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def render_dead_letters(views: list[DeadLetterView]) -> Table:
    """`dead_letters()` as a rich table, one row per dead letter."""
    table = Table(title=f"{len(views)} dead letters", title_justify="left")
    for column in (
        "topic",
        "offset",
        "time (UTC)",
        "consumer",
        "error",
        "reason",
        "source",
        "key",
        "replayed",
    ):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(
            v.dlq_topic,
            f"{v.partition}/{v.offset}" if v.partition else str(v.offset),
            f"{v.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            v.consumer,
            v.error_type,
            v.reason,
            f"{v.source_topic}/{v.source_partition}/{v.source_offset}",
            v.key or "-",
            "yes" if v.replayed else "[yellow]no[/yellow]",
        )
    return table


def render_inspection(seen: Inspection) -> Group:
    """`inspect()` for the terminal: where the dead letter came from, why, and the original message."""
    from rich.pretty import Pretty

    v = seen.view
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    for label, text in (
        ("dead letter", f"{v.dlq_topic}/{v.partition}/{v.offset}"),
        ("time", f"{v.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"),
        ("consumer", v.consumer),
        ("error", v.error_type),
        ("reason", v.reason),
        ("source", f"{v.source_topic}/{v.source_partition}/{v.source_offset}"),
        ("key", repr(seen.key) if seen.key is not None else "-"),
        ("value", f"{len(seen.value)} bytes{'' if seen.decoded is not None else ', binary (base64 below)'}"),
        ("replayed", "yes" if v.replayed else "no"),
    ):
        facts.add_row(label, text)
    if seen.decoded is None:
        body: Any = base64.b64encode(seen.value).decode()
    elif isinstance(seen.decoded, str):
        body = seen.decoded
    else:
        body = Pretty(seen.decoded)
    return Group(facts, body)


def render_resets(data_dir: Path) -> Table | None:
    """`ebackpack status`: the partitions workers of this host read again because the broker lost data."""
    resets = recent_resets(data_dir)
    if not resets:
        return None
    table = Table(title="Offsets reset: the broker had lost data (newest last)", title_justify="left")
    for column in ("at (UTC)", "group", "partition", "committed", "log end", "read again from", "why"):
        table.add_column(column)
    for r in resets:
        table.add_row(
            str(r.get("at", "?"))[:19].replace("T", " "),
            str(r.get("group")),
            f"{r.get('topic')}/{r.get('partition')}",
            str(r.get("committed")),
            str(r.get("end")),
            str(r.get("start")),
            str(r.get("reason", "")),
        )
    table.caption = "what the lost messages caused is re-derived from SQL (render requests sent again)"
    return table
