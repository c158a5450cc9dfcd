"""The notifier's part of a learner's erasure (`learner.erased`, see services/issuer/privacy.py): the
learner's notifications (their record and retry schedule, what each said), their preferences, and what
it noted of their credentials' PDFs (gone with the renderer's part).

One transaction. A retry due later finds its row gone and sends nothing. A `credentials` event of the
learner read after this (the two topics are not ordered with each other) finds no learner profile and is
recorded as skipped, with no personal data beyond the learner id. Erasing again changes nothing.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import NotificationPreferenceRow, NotificationRow, NotifierPdfRow
from schemas import LearnerErased


class NotificationErasure:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def __call__(self, erased: LearnerErased) -> None:
        with self.sessions.begin() as session:
            for table in (NotificationRow, NotificationPreferenceRow):
                session.execute(delete(table).where(table.learner_id == erased.learner_id))
            pdfs = NotifierPdfRow.credential_id.in_(erased.credential_ids)
            session.execute(delete(NotifierPdfRow).where(pdfs))
