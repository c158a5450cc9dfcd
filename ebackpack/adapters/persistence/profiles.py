"""The learners and courses tables from profiles: the issuer's view of Moodle, fed by the compacted
profile topics (and, in the demo and tests, by a profiles file)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import Course, Learner
from schemas.moodle import Profiles


def store_profiles(sessions: sessionmaker[Session], profiles: Profiles) -> None:
    """Insert or update (a name change applies to certificates rendered later)."""
    with sessions.begin() as session:
        merge_profiles(session, profiles)


def merge_profiles(session: Session, profiles: Profiles) -> None:
    """Insert or update within the caller's transaction."""
    for user in profiles.users:
        session.merge(
            Learner(
                id=user.id, firstname=user.firstname, lastname=user.lastname, email=user.email, lang=user.lang
            )
        )
    for course in profiles.courses:
        session.merge(Course(id=course.id, fullname=course.fullname, shortname=course.shortname))
