"""The issuer's use cases for callers that hold no unit of work (the agent, the CLI, the backpack's admin
pages, tests): each method runs one handler (handlers.py) on a new SQL unit of work, so one service may
serve many threads at once.

Its parts come from the composition root (`ebackpack.bootstrap.Platform`): `IssuerService.from_platform`
takes a platform as it is; `IssuerService(sessions, rules, settings)` builds one for these settings with
these sessions and rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import AwardRow, OutboxRow
from ebackpack.adapters.storage import ObjectStore
from ebackpack.bootstrap import Platform
from ebackpack.config import Settings
from ebackpack.domain.credentials.signer import CredentialSigner
from ebackpack.domain.rules import RuleBook
from ebackpack.streaming.topics import RENDER_REQUESTS
from schemas.credentials import LIVE, Origin

from . import handlers
from .handlers import (
    BatchResult,
    Context,
    CredentialNotFound,
    Incoming,
    missing_profile,
    parked_row,
    parse_moodle_message,
)
from .messages import SOURCE, Announcement
from .unit_of_work import SqlUnitOfWork

__all__ = [
    "SOURCE",
    "Announcement",
    "BatchResult",
    "CredentialNotFound",
    "Incoming",
    "IssuerService",
    "missing_profile",
    "parked_row",
    "parse_moodle_message",
]


class IssuerService(Context):
    """The handlers' context (rules, settings, keys, addresses: handlers.Context) with a method per use
    case, each on a unit of work of its own."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules: RuleBook,
        settings: Settings,
        signer: CredentialSigner | None = None,
    ):
        """A platform for these settings with these sessions and rules (its other parts built when first
        used, as the platform does)."""
        platform = Platform(settings)
        platform.sessions, platform.rules = sessions, rules
        super().__init__(platform, signer)

    @classmethod
    def from_platform(cls, platform: Platform, signer: CredentialSigner | None = None) -> IssuerService:
        """Every part (engine, rules, keys, code secret) shared with the rest of the process."""
        service = cls.__new__(cls)
        Context.__init__(service, platform, signer)
        return service

    @property
    def objects(self) -> ObjectStore:
        return self.platform.objects

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.platform.sessions

    def uow(self) -> SqlUnitOfWork:
        """A new unit of work per call: a unit of work holds one session, and callers run in threads."""
        return SqlUnitOfWork(self.platform)

    def handle(self, raw: bytes) -> list[OutboxRow]:
        """Returns the events still to announce for the award this message earns (often none).

        Raises InvalidMessage for a message that can never be processed. A completion that must wait for
        a profile is parked (nothing to announce yet).
        """
        result = self.handle_batch([raw])
        for _index, error in result.invalid:
            raise error
        return result.events

    def handle_batch(
        self,
        raws: Sequence[bytes],
        sources: Sequence[str] = (),
        render_topic: str = RENDER_REQUESTS,
        origin: Origin = LIVE,
    ) -> BatchResult:
        return handlers.award_batch(self.uow(), self, raws, sources, render_topic, origin)

    def resume_parked(
        self, learner_ids: set[int] | None = None, course_id: int | None = None
    ) -> list[OutboxRow]:
        return handlers.resume_parked(self.uow(), self, learner_ids, course_id)

    def parked_count(self) -> int:
        return handlers.parked_count(self.uow())

    def rerender(self, course_id: int | None = None, rule_id: str | None = None) -> int:
        return handlers.rerender(self.uow(), self, course_id, rule_id)

    def erase(self, learner_id: int) -> int:
        return handlers.erase(self.uow(), self, learner_id)

    def apply_profile(self, kind: str, key: bytes | None, value: bytes | None) -> int | None:
        return handlers.apply_profile(self.uow(), kind, value)

    def revoke(self, code_or_id: str, reason: str, now: datetime | None = None) -> AwardRow:
        return handlers.revoke(self.uow(), self, code_or_id, reason, now)

    def expire_due(self, now: datetime | None = None, limit: int = 500) -> int:
        return handlers.expire_due(self.uow(), self, now, limit)

    def mark_sent(self, event_ids: list[str]) -> None:
        handlers.mark_sent(self.uow(), event_ids)

    def stale_events(self, older_than_seconds: float) -> list[OutboxRow]:
        return handlers.stale_events(self.uow(), older_than_seconds)
