"""One Moodle event -> one `moodle.events` message, whichever way it came in (webhook, log-store poller,
history import), and the ledger that lets each event be published once.

The message id is derived from the event's own fields, so the webhook and the poller give the same
event the same id, and the ledger (`gateway_events`) recognises it when the second path delivers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import GatewayEventRow
from schemas import MoodleEventMessage, deterministic_id
from schemas.moodle import USER_DELETED, MoodleEvent

Message = tuple[bytes, bytes]  # (key, value) as the publisher sends them
# The events e-Backpack acts on: completions award, a deleted user is erased, an updated user's profile
# is read again. Everything else Moodle logs is left where it is.
USED = ("\\core\\event\\course_completed", "\\core\\event\\user_deleted", "\\core\\event\\user_updated")


# Moodle keeps ids in BIGINT columns and times in BIGINT(10) ones (ten digits: up to the year 2286).
SMALLEST, LARGEST = -(2**63), 2**63 - 1
LATEST_TIME = 9_999_999_999
TIMES = ("timecreated", "timecompleted")


def out_of_range(event: MoodleEvent) -> list[dict[str, Any]]:
    """The numbers of `event` no Moodle database could hold (field and message), before they reach a
    query, a date conversion or another service's BIGINT column."""
    problems = []
    for name, value in event:
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if name in TIMES and not 0 <= value <= LATEST_TIME:
            problems.append(
                {"field": name, "message": f"{value} is not a Moodle time (unix seconds, 0 to {LATEST_TIME})"}
            )
        elif not SMALLEST <= value <= LARGEST:
            problems.append({"field": name, "message": f"{value} does not fit a Moodle id (64-bit integer)"})
    return problems


def unpublishable(site: str, event: MoodleEvent) -> str | None:
    """Why `event` cannot become a `moodle.events` message (e.g. a lone surrogate in a string), or None."""
    try:
        moodle_message(site, event)
    except (ValueError, OverflowError, UnicodeError) as exc:  # PydanticSerializationError is a ValueError
        return f"cannot be published: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def problems(site: str, event: MoodleEvent) -> list[dict[str, Any]]:
    """Why a validated event still cannot be published (field and message each), or [] when it can."""
    wrong = out_of_range(event)
    if not wrong and (why := unpublishable(site, event)) is not None:
        wrong = [{"field": "(the event itself)", "message": why}]
    return wrong


def moodle_event_id(site: str, event: MoodleEvent) -> str:
    """The same Moodle event always gets the same id (the id scheme of the sample data sets)."""
    return deterministic_id(site, event.eventname, event.objectid, event.relateduserid, event.timecreated)


def moodle_message(site: str, event: MoodleEvent) -> tuple[str, Message]:
    """(event id, (key, value)): keyed by the learner (`relateduserid`), else by whoever acted.

    A deleted user's username and e-mail (`other` of user_deleted) are not passed on: the event only has
    to say who was deleted.
    """
    if event.eventname == USER_DELETED:
        event = event.model_copy(update={"other": None})
    owner = event.relateduserid if event.relateduserid is not None else event.userid
    event_id = moodle_event_id(site, event)
    message = MoodleEventMessage.build(
        id=event_id,
        source=f"moodle://{site}",
        subject=None if event.relateduserid is None else str(event.relateduserid),
        time=datetime.fromtimestamp(event.timecreated, UTC),
        data=event,
    )
    return event_id, (str(owner).encode("ascii"), message.to_bytes())


class PublishedEvents:
    """The gateway's ledger of published events (idempotency per site and event)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def unseen(self, event_ids: Iterable[str]) -> set[str]:
        wanted = set(event_ids)
        with self.sessions() as session:
            seen = set(
                session.scalars(select(GatewayEventRow.event_id).where(GatewayEventRow.event_id.in_(wanted)))
            )
        return wanted - seen

    def record(self, site: str, source: str, event_ids: Iterable[str]) -> None:
        """After the broker acknowledged them: one bulk insert; ids another path recorded meanwhile are
        skipped (a concurrent recorder of the same id is harmless)."""
        now = datetime.now(UTC)
        wanted = set(event_ids)
        for _attempt in range(3):
            rows = [
                {"event_id": e, "site": site, "source": source, "received_at": now}
                for e in self.unseen(wanted)
            ]
            if not rows:
                return
            try:
                with self.sessions.begin() as session:
                    session.execute(insert(GatewayEventRow), rows)
                return
            except IntegrityError:
                continue  # another path recorded some of them: look again


@dataclass
class Plan:
    """What one batch publishes: new used events in order, and what it leaves out."""

    ids: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    duplicates: int = 0
    ignored: int = 0


def plan(used: list[tuple[str, Message]], ignored: int, publish: set[str]) -> Plan:
    """The events whose ids are in `publish`, each once; the rest are duplicates (published before,
    by another request in flight, or earlier in the same batch)."""
    result = Plan(ignored=ignored)
    todo = set(publish)
    for event_id, message in used:
        if event_id in todo:
            todo.discard(event_id)
            result.ids.append(event_id)
            result.messages.append(message)
        else:
            result.duplicates += 1
    return result
