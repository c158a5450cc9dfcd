"""Learner and course profiles: read from Moodle (its database, or its web services with a token),
published to the compacted topics `moodle.users` / `moodle.courses`, and kept by the issuer as its view.

Certificates need the learner's name, e-mail and language and the course's full name; the completion
date is `course_completions.timecompleted`. Before the gateway publishes events it calls
`ProfileSync.prepare(events)`: the profiles they need are published first, completions get their
`timecompleted`, and a deleted user's profile gets a tombstone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from kafka import KafkaProducer
from sqlalchemy import Engine, bindparam, create_engine, text

from ebackpack.config import Settings
from ebackpack.persistence.profiles import store_profiles
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

__all__ = ["MoodleDatabase", "MoodleWebServices", "ProfilePublisher", "ProfileSync", "store_profiles"]

SOURCE = "urn:ebackpack:gateway"
USER_UPDATED = "\\core\\event\\user_updated"


class ProfileSource(Protocol):
    def users(self, ids: Sequence[int]) -> list[LearnerProfile]: ...
    def courses(self, ids: Sequence[int]) -> list[CourseProfile]: ...
    def completion_times(self, completion_ids: Sequence[int]) -> dict[int, int]: ...


class MoodleDatabase:
    """Profiles from the Moodle database (read-only user): `mdl_user`, `mdl_course`,
    `mdl_course_completions`. Works on PostgreSQL and MariaDB/MySQL alike (plain SQL, bound lists)."""

    def __init__(self, engine: Engine, prefix: str = "mdl_") -> None:
        self.engine, self.prefix = engine, prefix

    def _rows(self, sql: str, ids: Sequence[int]) -> list[Any]:
        if not ids:
            return []
        query = text(sql.format(p=self.prefix)).bindparams(bindparam("ids", expanding=True))
        with self.engine.connect() as connection:
            return list(connection.execute(query, {"ids": list(ids)}))

    def users(self, ids: Sequence[int]) -> list[LearnerProfile]:
        rows = self._rows(
            "SELECT id, firstname, lastname, email, lang FROM {p}user WHERE id IN :ids AND deleted = 0", ids
        )
        return [
            LearnerProfile(
                id=r.id, firstname=r.firstname, lastname=r.lastname, email=r.email, lang=_language(r.lang)
            )
            for r in rows
        ]

    def courses(self, ids: Sequence[int]) -> list[CourseProfile]:
        rows = self._rows("SELECT id, fullname, shortname FROM {p}course WHERE id IN :ids", ids)
        return [CourseProfile(id=r.id, fullname=r.fullname, shortname=r.shortname) for r in rows]

    def completion_times(self, completion_ids: Sequence[int]) -> dict[int, int]:
        rows = self._rows(
            "SELECT id, timecompleted FROM {p}course_completions WHERE id IN :ids "
            "AND timecompleted IS NOT NULL",
            completion_ids,
        )
        return {int(r.id): int(r.timecompleted) for r in rows}


class MoodleWebServices:
    """Profiles through Moodle's REST web services (a token with `core_user_get_users_by_field` and
    `core_course_get_courses_by_field`). The completion time is not available this way: certificates
    then print the event's time."""

    def __init__(self, moodle_url: str, token: str, client: httpx.Client | None = None) -> None:
        self.endpoint = f"{moodle_url.rstrip('/')}/webservice/rest/server.php"
        self.token = token
        self.client = client or httpx.Client(timeout=10)

    def _call(self, function: str, params: dict[str, Any]) -> Any:
        query = {"wstoken": self.token, "wsfunction": function, "moodlewsrestformat": "json", **params}
        answer = self.client.post(self.endpoint, data=query)
        answer.raise_for_status()
        body = answer.json()
        if isinstance(body, dict) and "exception" in body:
            raise RuntimeError(f"Moodle {function}: {body.get('errorcode')}: {body.get('message')}")
        return body

    def users(self, ids: Sequence[int]) -> list[LearnerProfile]:
        if not ids:
            return []
        params = {"field": "id", **{f"values[{i}]": str(v) for i, v in enumerate(ids)}}
        return [
            LearnerProfile(
                id=u["id"],
                firstname=u.get("firstname", ""),
                lastname=u.get("lastname", ""),
                email=u.get("email", ""),
                lang=_language(u.get("lang")),
            )
            for u in self._call("core_user_get_users_by_field", params)
        ]

    def courses(self, ids: Sequence[int]) -> list[CourseProfile]:
        if not ids:
            return []
        body = self._call(
            "core_course_get_courses_by_field", {"field": "ids", "value": ",".join(map(str, ids))}
        )
        return [
            CourseProfile(id=c["id"], fullname=c["fullname"], shortname=c["shortname"])
            for c in body.get("courses", [])
        ]

    def completion_times(self, completion_ids: Sequence[int]) -> dict[int, int]:
        return {}


def _language(value: object) -> str:
    """Moodle language packs are `pl`, `en`, `en_us`, …: certificates come in Polish or English."""
    return "pl" if str(value or "").lower().startswith("pl") else "en"


class ProfilePublisher:
    """Publishes profiles and tombstones to the compacted topics, waiting for the broker's acks."""

    def __init__(self, settings: Settings) -> None:
        self.users_topic, self.courses_topic = settings.topic(MOODLE_USERS), settings.topic(MOODLE_COURSES)
        self.site = settings.site_id
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            acks="all",
            retries=5,
            max_in_flight_requests_per_connection=1,
        )

    def publish(
        self,
        users: Iterable[LearnerProfile] = (),
        courses: Iterable[CourseProfile] = (),
        deleted: Iterable[int] = (),
    ) -> None:
        now = datetime.now(UTC)
        futures = [self._send(self.users_topic, MoodleUserMessage, "moodle.user", user, now)
                   for user in users]
        futures += [self._send(self.courses_topic, MoodleCourseMessage, "moodle.course", course, now)
                    for course in courses]
        for user_id in deleted:
            futures.append(self._producer.send(self.users_topic, key=str(user_id).encode(), value=None))
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)

    def _send(self, topic: str, message_class: type[MoodleUserMessage] | type[MoodleCourseMessage], kind: str,
              profile: LearnerProfile | CourseProfile, now: datetime) -> Any:
        """One profile, keyed by its Moodle id (the compacted topic keeps the latest per id)."""
        message = message_class.build(
            id=deterministic_id(kind, self.site, profile.id, now.isoformat()),
            source=f"moodle://{self.site}",
            subject=str(profile.id),
            time=now,
            data=profile,
        )
        return self._producer.send(topic, key=str(profile.id).encode(), value=message.to_bytes())

    def close(self) -> None:
        self._producer.close(timeout=10)


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
            source = MoodleDatabase(create_engine(settings.moodle_db_url, pool_pre_ping=True),
                                    settings.moodle_db_prefix)
        elif settings.moodle_ws_token is not None:
            source = MoodleWebServices(settings.moodle_url, settings.moodle_ws_token.get_secret_value())
        else:
            return None
        return cls(source, ProfilePublisher(settings))

    def prepare(self, events: Sequence[MoodleEvent]) -> list[MoodleEvent]:
        completions = [e for e in events if e.eventname == COURSE_COMPLETED and e.relateduserid]
        refreshed = {e.relateduserid for e in events if e.eventname == USER_UPDATED and e.relateduserid}
        deleted = sorted({e.relateduserid for e in events if e.eventname == USER_DELETED and e.relateduserid})
        users = self.source.users(
            sorted({e.relateduserid for e in completions if e.relateduserid} | refreshed)
        )
        courses = self.source.courses(sorted({e.courseid for e in completions}))
        self.publisher.publish(users, courses, deleted)
        times = self.source.completion_times(sorted({e.objectid for e in completions if e.objectid}))
        return [self._completed(event, times) for event in events]

    @staticmethod
    def _completed(event: MoodleEvent, times: dict[int, int]) -> MoodleEvent:
        if event.eventname == COURSE_COMPLETED and event.objectid in times:
            return event.model_copy(update={"timecompleted": times[event.objectid]})
        return event
