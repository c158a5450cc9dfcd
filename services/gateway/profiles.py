"""Learner and course profiles: read from Moodle (its database, or its web services with a token),
published to the compacted topics `moodle.users` / `moodle.courses`, and kept by the issuer as its view.

Certificates need the learner's name, e-mail and language and the course's full name; the completion
date is `course_completions.timecompleted`. Before the gateway publishes events it calls
`ProfileSync.prepare(events, deadline)`: the profiles they need are published first, completions get
their `timecompleted`, and a deleted user's profile gets a tombstone. Every step is bounded by the
caller's deadline (the webhook answers the plugin within seconds) and fails with an exception that says
what failed: `ProfilesUnavailable` (Moodle did not answer) or `BrokerUnavailable` (the broker did not).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from pydantic import ValidationError
from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from ebackpack.adapters.persistence.profiles import store_profiles
from ebackpack.config import Settings
from ebackpack.streaming.topics import MOODLE_COURSES, MOODLE_USERS
from schemas import deterministic_id
from schemas.moodle import (
    COURSE_COMPLETED,
    USER_DELETED,
    CourseProfile,
    LearnerProfile,
    MoodleCourseMessage,
    MoodleEvent,
    MoodleUserMessage,
)
from services.gateway.publisher import BrokerUnavailable, ProducerSlot, Record, publish_acked

__all__ = [
    "BrokerUnavailable",
    "MoodleDatabase",
    "MoodleWebServices",
    "ProfilePublisher",
    "ProfileSync",
    "ProfilesUnavailable",
    "store_profiles",
]

SOURCE = "urn:ebackpack:gateway"
USER_UPDATED = "\\core\\event\\user_updated"
MOODLE_TIMEOUT = 10.0  # seconds: the most one read from Moodle (database or web services) may take
PUBLISH_TIMEOUT = 10.0  # seconds: the most the broker may take to acknowledge the profiles of a batch
PREPARE_TIMEOUT = 30.0  # seconds: a batch's profiles when the caller gives no deadline (the poller)


class ProfilesUnavailable(RuntimeError):  # noqa: N818 - names the condition, as the 503 text does
    """Moodle (its database or its web services) did not give the profiles in time."""


class ProfileSource(Protocol):
    def users(self, ids: Sequence[int], deadline: float | None = None) -> list[LearnerProfile]: ...
    def courses(self, ids: Sequence[int], deadline: float | None = None) -> list[CourseProfile]: ...
    def completion_times(
        self, completion_ids: Sequence[int], deadline: float | None = None
    ) -> dict[int, int]: ...


def moodle_profile_engine(url: str, timeout: float = MOODLE_TIMEOUT) -> Engine:
    """An engine for the Moodle database whose connects and statements give up after `timeout` seconds,
    on PostgreSQL (libpq's connect_timeout, statement_timeout) and MariaDB/MySQL (connect and read)."""
    seconds = max(int(timeout), 1)
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args = {"connect_timeout": seconds, "options": f"-c statement_timeout={seconds * 1000}"}
    elif url.startswith(("mysql", "mariadb")):
        connect_args = {"connect_timeout": seconds, "read_timeout": seconds}
    return create_engine(url, pool_pre_ping=True, pool_timeout=seconds, connect_args=connect_args)


class MoodleDatabase:
    """Profiles from the Moodle database (read-only user): `mdl_user`, `mdl_course`,
    `mdl_course_completions`. Works on PostgreSQL and MariaDB/MySQL alike (plain SQL, bound lists)."""

    def __init__(self, engine: Engine, prefix: str = "mdl_") -> None:
        self.engine, self.prefix = engine, prefix

    def _rows(self, sql: str, ids: Sequence[int]) -> list[Any]:
        """The rows, or `ProfilesUnavailable` (the engine's connect and statement timeouts bound the wait)."""
        if not ids:
            return []
        query = text(sql.format(p=self.prefix)).bindparams(bindparam("ids", expanding=True))
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(query, {"ids": list(ids)}))
        except SQLAlchemyError as exc:
            raise ProfilesUnavailable(
                f"the Moodle database did not answer: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            ) from exc

    def users(self, ids: Sequence[int], deadline: float | None = None) -> list[LearnerProfile]:
        rows = self._rows(
            "SELECT id, firstname, lastname, email, lang FROM {p}user WHERE id IN :ids AND deleted = 0", ids
        )
        return [
            LearnerProfile(
                id=r.id, firstname=r.firstname, lastname=r.lastname, email=r.email, lang=_language(r.lang)
            )
            for r in rows
        ]

    def courses(self, ids: Sequence[int], deadline: float | None = None) -> list[CourseProfile]:
        rows = self._rows("SELECT id, fullname, shortname FROM {p}course WHERE id IN :ids", ids)
        return [CourseProfile(id=r.id, fullname=r.fullname, shortname=r.shortname) for r in rows]

    def completion_times(
        self, completion_ids: Sequence[int], deadline: float | None = None
    ) -> dict[int, int]:
        rows = self._rows(
            "SELECT id, timecompleted FROM {p}course_completions WHERE id IN :ids "
            "AND timecompleted IS NOT NULL",
            completion_ids,
        )
        return {int(r.id): int(r.timecompleted) for r in rows}


class MoodleWebServices:
    """Profiles through Moodle's REST web services (a token with `core_user_get_users_by_field` and
    `core_course_get_courses_by_field`). The completion time is not available this way: certificates
    then print the event's time. Each call is bounded by `timeout` seconds and by the caller's deadline,
    connecting, sending and reading alike."""

    def __init__(
        self, moodle_url: str, token: str, client: httpx.Client | None = None, timeout: float = MOODLE_TIMEOUT
    ) -> None:
        self.endpoint = f"{moodle_url.rstrip('/')}/webservice/rest/server.php"
        self.token = token
        self.timeout = timeout
        self.client = client or httpx.Client(timeout=timeout)

    def _call(self, function: str, params: dict[str, Any], deadline: float | None) -> Any:
        query = {"wstoken": self.token, "wsfunction": function, "moodlewsrestformat": "json", **params}
        wait = self.timeout if deadline is None else min(self.timeout, deadline - time.monotonic())
        if wait <= 0:
            raise ProfilesUnavailable(f"no time left to call Moodle's web service {function}")
        try:  # bounds connecting, sending, each read and waiting for a pooled connection
            answer = self.client.post(self.endpoint, data=query, timeout=wait)
            answer.raise_for_status()
            body = answer.json()
        except httpx.TimeoutException as exc:
            raise ProfilesUnavailable(
                f"Moodle's web service {function} did not answer within {wait:.1f} s"
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ProfilesUnavailable(
                f"Moodle's web service {function} failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        if isinstance(body, dict) and "exception" in body:
            raise ProfilesUnavailable(f"Moodle {function}: {body.get('errorcode')}: {body.get('message')}")
        return body

    def users(self, ids: Sequence[int], deadline: float | None = None) -> list[LearnerProfile]:
        if not ids:
            return []
        params = {"field": "id", **{f"values[{i}]": str(v) for i, v in enumerate(ids)}}
        body = self._call("core_user_get_users_by_field", params, deadline)
        with _unexpected("core_user_get_users_by_field"):
            return [
                LearnerProfile(
                    id=u["id"],
                    firstname=u.get("firstname", ""),
                    lastname=u.get("lastname", ""),
                    email=u.get("email", ""),
                    lang=_language(u.get("lang")),
                )
                for u in body
            ]

    def courses(self, ids: Sequence[int], deadline: float | None = None) -> list[CourseProfile]:
        if not ids:
            return []
        body = self._call(
            "core_course_get_courses_by_field", {"field": "ids", "value": ",".join(map(str, ids))}, deadline
        )
        with _unexpected("core_course_get_courses_by_field"):
            return [
                CourseProfile(id=c["id"], fullname=c["fullname"], shortname=c["shortname"])
                for c in body.get("courses", [])
            ]

    def completion_times(
        self, completion_ids: Sequence[int], deadline: float | None = None
    ) -> dict[int, int]:
        return {}


@contextmanager
def _unexpected(function: str) -> Iterator[None]:
    """An answer of Moodle's that is not what the function returns: `ProfilesUnavailable`."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise ProfilesUnavailable(
            f"Moodle's web service {function} answered something unexpected: "
            f"{type(exc).__name__}: {str(exc)[:200]}"
        ) from exc


def _language(value: object) -> str:
    """Moodle language packs are `pl`, `en`, `en_us`, …: certificates come in Polish or English."""
    return "pl" if str(value or "").lower().startswith("pl") else "en"


class ProfilePublisher:
    """Publishes profiles and tombstones to the compacted topics, waiting for the broker's acks, each
    batch within `timeout` seconds and the caller's deadline (else `BrokerUnavailable`). The producer is
    bounded the same way and connects on first use, so a gateway starts while the broker is down."""

    def __init__(self, settings: Settings, timeout: float = PUBLISH_TIMEOUT) -> None:
        self.users_topic, self.courses_topic = settings.topic(MOODLE_USERS), settings.topic(MOODLE_COURSES)
        self.site = settings.site_id
        self.timeout = timeout
        self._slot = ProducerSlot(settings, "ebackpack-gateway-profiles", timeout)

    def publish(
        self,
        users: Iterable[LearnerProfile] = (),
        courses: Iterable[CourseProfile] = (),
        deleted: Iterable[int] = (),
        deadline: float | None = None,
    ) -> None:
        now = datetime.now(UTC)
        records = [
            self._record(self.users_topic, MoodleUserMessage, "moodle.user", user, now) for user in users
        ]
        records += [
            self._record(self.courses_topic, MoodleCourseMessage, "moodle.course", course, now)
            for course in courses
        ]
        records += [(self.users_topic, str(user_id).encode(), None) for user_id in deleted]
        if not records:
            return
        own = time.monotonic() + self.timeout
        try:
            publish_acked(self._slot, records, own if deadline is None else min(own, deadline))
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"profiles not published: {exc}") from exc

    def _record(
        self,
        topic: str,
        message_class: type[MoodleUserMessage] | type[MoodleCourseMessage],
        kind: str,
        profile: LearnerProfile | CourseProfile,
        now: datetime,
    ) -> Record:
        """One profile, keyed by its Moodle id (the compacted topic keeps the latest per id)."""
        message = message_class.build(
            id=deterministic_id(kind, self.site, profile.id, now.isoformat()),
            source=f"moodle://{self.site}",
            subject=str(profile.id),
            time=now,
            data=profile,
        )
        return topic, str(profile.id).encode(), message.to_bytes()

    def close(self) -> None:
        self._slot.close(timeout=10)


class ProfileSync:
    """Makes a batch of events ready to publish: profiles first, completion dates, tombstones."""

    def __init__(self, source: ProfileSource, publisher: ProfilePublisher) -> None:
        self.source, self.publisher = source, publisher

    @classmethod
    def for_settings(cls, settings: Settings) -> ProfileSync | None:
        """From the Moodle database when `moodle_db_url` is set, else its web services when a token is;
        None when neither is (profiles then come from elsewhere, e.g. the demo's profiles file)."""
        source: ProfileSource
        if settings.moodle_db_url:
            source = MoodleDatabase(moodle_profile_engine(settings.moodle_db_url), settings.moodle_db_prefix)
        elif settings.moodle_ws_token is not None:
            source = MoodleWebServices(settings.moodle_url, settings.moodle_ws_token.get_secret_value())
        else:
            return None
        return cls(source, ProfilePublisher(settings))

    def close(self) -> None:
        self.publisher.close()

    def prepare(
        self,
        events: Sequence[MoodleEvent],
        deadline: float | None = None,
        doing: Callable[[str], None] = lambda _step: None,
    ) -> list[MoodleEvent]:
        """The events with completion dates, after their profiles were acknowledged by the broker; by
        `deadline` (`time.monotonic()`, default `PREPARE_TIMEOUT` from now), else `ProfilesUnavailable`
        (Moodle) or `BrokerUnavailable` (the broker). `doing` is told each step as it starts."""
        deadline = time.monotonic() + PREPARE_TIMEOUT if deadline is None else deadline
        doing("reading the learners' profiles from Moodle")
        completions = [e for e in events if e.eventname == COURSE_COMPLETED and e.relateduserid]
        refreshed = {e.relateduserid for e in events if e.eventname == USER_UPDATED and e.relateduserid}
        deleted = sorted({e.relateduserid for e in events if e.eventname == USER_DELETED and e.relateduserid})
        users = self.source.users(
            sorted({e.relateduserid for e in completions if e.relateduserid} | refreshed), deadline
        )
        courses = self.source.courses(sorted({e.courseid for e in completions}), deadline)
        times = self.source.completion_times(
            sorted({e.objectid for e in completions if e.objectid}), deadline
        )
        doing("waiting for the broker to acknowledge the learners' profiles")
        self.publisher.publish(users, courses, deleted, deadline)
        return [self._completed(event, times) for event in events]

    @staticmethod
    def _completed(event: MoodleEvent, times: dict[int, int]) -> MoodleEvent:
        if event.eventname == COURSE_COMPLETED and event.objectid in times:
            return event.model_copy(update={"timecompleted": times[event.objectid]})
        return event
