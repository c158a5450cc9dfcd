"""In-memory stand-ins for the notifier's unit of work and channels: its handlers run without a database,
an SMTP server or Moodle.

`FakeUnitOfWork` keeps what was committed apart from what a transaction changes: entering it starts from
a copy of the committed state, `commit()` makes the copy the committed state, leaving without a commit
drops it. A handler that forgets to save or to commit loses its change here as it would on SQL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Self

from services.notifier.delivery import DEAD, FAILED, GAVE_UP, PENDING, SENDING, SENT, Key, Notification
from services.notifier.repository import CredentialFacts, LearnerFacts
from services.notifier.unit_of_work import NotifierUnitOfWork


@dataclass
class State:
    notifications: dict[Key, Notification] = field(default_factory=dict)
    pdfs: dict[str, datetime] = field(default_factory=dict)
    preferences: dict[tuple[int, str, str], bool] = field(default_factory=dict)
    learners: dict[int, LearnerFacts] = field(default_factory=dict)
    credentials: dict[str, CredentialFacts] = field(default_factory=dict)
    courses: dict[int, str] = field(default_factory=dict)


class FakeNotifications:
    def __init__(self, state: State) -> None:
        self.rows = state.notifications

    def get(self, key: Key) -> Notification | None:
        found = self.rows.get(key)
        return None if found is None else copy.copy(found)  # a change counts only once saved

    def add(self, notification: Notification) -> None:
        self.rows[notification.key] = copy.copy(notification)

    def save(self, notification: Notification) -> None:
        assert notification.key in self.rows, "save() writes back a notification that get() returned"
        self.rows[notification.key] = copy.copy(notification)

    def claim(self, notification: Notification, now: datetime) -> bool:
        stored = self.rows.get(notification.key)
        if stored is None or (stored.state, stored.attempts) != (notification.state, notification.attempts):
            return False
        stored.state, stored.attempts, stored.updated_at = SENDING, stored.attempts + 1, now
        return True

    def mark_sent(self, key: Key, now: datetime) -> None:
        stored = self.rows.get(key)
        if stored is not None and stored.state != SENT:
            stored.state, stored.sent_at, stored.updated_at = SENT, now, now
            stored.last_error, stored.next_attempt_at = None, None

    def mark_dead(self, key: Key, now: datetime) -> None:
        stored = self.rows.get(key)
        if stored is not None and stored.state == GAVE_UP:
            stored.state, stored.updated_at = DEAD, now

    def requeue(self, key: Key, now: datetime) -> bool:
        stored = self.rows.get(key)
        if stored is None or stored.state not in (DEAD, GAVE_UP):
            return False
        stored.state, stored.attempts, stored.next_attempt_at, stored.updated_at = PENDING, 0, now, now
        return True

    def due(self, now: datetime, stale_before: datetime, limit: int) -> list[Key]:
        def due(n: Notification) -> bool:
            waited = n.next_attempt_at is not None and n.next_attempt_at <= now
            if n.state == FAILED:
                return waited
            if n.state == PENDING:
                assert n.next_attempt_at is not None
                return waited and (n.next_attempt_at > n.created_at or n.created_at <= stale_before)
            if n.state == SENDING:
                return n.updated_at <= stale_before
            return n.state == GAVE_UP

        found = sorted((n for n in self.rows.values() if due(n)), key=lambda n: n.next_attempt_at or now)
        return [n.key for n in found[:limit]]

    def pending_for(self, credential_id: str) -> list[Notification]:
        return [
            copy.copy(n)
            for n in self.rows.values()
            if n.credential_id == credential_id and n.state == PENDING
        ]


class FakePdfs:
    def __init__(self, state: State) -> None:
        self.rows = state.pdfs

    def has(self, credential_id: str) -> bool:
        return credential_id in self.rows

    def add(self, credential_id: str, rendered_at: datetime) -> None:
        self.rows.setdefault(credential_id, rendered_at)


class FakePreferences:
    def __init__(self, state: State) -> None:
        self.rows = state.preferences

    def enabled(self, learner_id: int, kind: str, channel: str) -> bool:
        return self.rows.get((learner_id, kind, channel), True)


class FakeCredentials:
    def __init__(self, state: State) -> None:
        self.state = state

    def learner(self, learner_id: int) -> LearnerFacts | None:
        return self.state.learners.get(learner_id)

    def credential(self, credential_id: str) -> CredentialFacts | None:
        return self.state.credentials.get(credential_id)

    def course_name(self, course_id: int) -> str | None:
        return self.state.courses.get(course_id)

    def expiring(self, now: datetime, horizon: datetime, limit: int) -> list[CredentialFacts]:
        reminded = {n.credential_id for n in self.state.notifications.values() if n.kind == "expiry"}
        found = [
            c
            for c in self.state.credentials.values()
            if c.status == "issued"
            and c.valid_until is not None
            and now < c.valid_until <= horizon
            and c.credential_id not in reminded
        ]
        return sorted(found, key=lambda c: c.valid_until or now)[:limit]


class FakeUnitOfWork(NotifierUnitOfWork):
    def __init__(self) -> None:
        self.committed = State()
        self.commits = 0

    def __enter__(self) -> Self:
        self.working = copy.deepcopy(self.committed)
        self.notifications = FakeNotifications(self.working)
        self.pdfs = FakePdfs(self.working)
        self.preferences = FakePreferences(self.working)
        self.credentials = FakeCredentials(self.working)
        return super().__enter__()

    def commit(self) -> None:
        self.committed = copy.deepcopy(self.working)
        self.commits += 1

    def discard(self) -> None:
        pass  # the working copy is dropped: the next transaction starts from `committed`


class FakeEmail:
    """An SMTP server's acceptance, or its refusal: `failure` is raised instead while it is set."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.failure: Exception | None = None

    def send(self, message: EmailMessage, accepted: Callable[[], None]) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append(message)
        accepted()


class FakeMoodle:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []  # (user id, HTML, client message id)

    def send(self, user_id: int, html: str, client_id: str, accepted: Callable[[], None]) -> None:
        self.sent.append((user_id, html, client_id))
        accepted()
