"""The issuer's service layer: Moodle events in (a batch at a time), the events to announce out.

parse -> is it a learner completion with a rule? -> persist the award, its signed credentials and its
outbox atomically -> return the unsent outbox events (also on redelivery: that is how a crash between
"saved" and "announced" is repaired). Revocation, expiry and re-render requests go through the same
outbox, announced by the agent's relay.

A completion whose learner (or, for a certificate, course) profile has not arrived yet is parked in SQL,
per learner and in order, in the same transaction: the stream flows on, and `resume_parked` issues it
when the profile is there (the profile agents and a timer call it). A learner with parked messages gets
every later completion parked behind them, so one learner's order is kept.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.keystore import code_secret_for, keyring_for
from ebackpack.adapters.persistence.profiles import store_profiles
from ebackpack.adapters.persistence.tables import (
    AwardRow,
    Course,
    Learner,
    OutboxRow,
    ParkedMessageRow,
    SignedCredentialRow,
)
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import Settings
from ebackpack.domain.credentials.facts import as_utc, new_salt, recipient_hash
from ebackpack.domain.credentials.signer import DATA_INTEGRITY, CredentialSigner, Signed
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import RuleBook
from ebackpack.streaming.errors import InvalidMessage, TransientError, is_transient, parse_message
from ebackpack.streaming.topics import CREDENTIALS, RENDER_REQUESTS
from schemas import (
    Achievement,
    CertificateRenderRequest,
    CertificateRenderRequestMessage,
    CredentialExpired,
    CredentialExpiredMessage,
    CredentialIssued,
    CredentialIssuedMessage,
    CredentialRevoked,
    CredentialRevokedMessage,
    MoodleCourseMessage,
    MoodleEventMessage,
    MoodleUserMessage,
    deterministic_id,
)
from schemas.moodle import USER_DELETED, Profiles

from .domain import Award, NotALearnerCompletion, decide_award
from .privacy import erase_rows, plan_erasure
from .repository import AwardRepository

SOURCE = "ebackpack/issuer"
log = logging.getLogger(__name__)
Announcement = (
    CredentialIssuedMessage
    | CertificateRenderRequestMessage
    | CredentialRevokedMessage
    | CredentialExpiredMessage
)


class CredentialNotFound(LookupError):
    pass


@dataclass
class BatchResult:
    events: list[OutboxRow] = field(default_factory=list)  # to announce
    invalid: list[tuple[int, InvalidMessage]] = field(default_factory=list)  # poison: dead-letter
    parked: list[int] = field(default_factory=list)  # waiting for a profile, saved in parked_messages


@dataclass(frozen=True)
class Incoming:
    """One completion of a batch: where it came from and the award it earns."""

    index: int
    award: Award
    raw: bytes
    source: str = ""  # topic/partition/offset, kept with a parked message


def parse_moodle_message(raw: bytes) -> MoodleEventMessage:
    return parse_message(MoodleEventMessage, raw)


class IssuerService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules: RuleBook,
        settings: Settings,
        signer: CredentialSigner | None = None,
    ):
        self.sessions = sessions
        self.rules = rules
        self.settings = settings
        self.urls = PublicUrls(settings.public_url)
        if signer is not None:
            self.signer = signer

    @cached_property
    def code_secret(self) -> bytes:
        return code_secret_for(self.settings)

    @cached_property
    def signer(self) -> CredentialSigner:
        return CredentialSigner(keyring_for(self.settings), self.settings.formats)

    def _store(self, session: Session) -> CredentialStore:
        return CredentialStore.for_settings(session, self.rules, self.settings)

    def handle(self, raw: bytes) -> list[OutboxRow]:
        """Returns the events still to announce for the award this message earns (often none).

        Raises InvalidMessage for a message that can never be processed. A completion that must wait for
        a profile is parked (nothing to announce yet).
        """
        result = self.handle_batch([raw])
        for _index, error in result.invalid:
            raise error
        return result.events

    def handle_batch(self, raws: Sequence[bytes], sources: Sequence[str] = ()) -> BatchResult:
        """Many messages, one transaction: the awards they earn, signed, with their outbox events, and the
        completions that must wait for a profile, parked.

        Invalid messages are left out and reported, so the caller can dead-letter them; the rest is
        committed together.
        """
        result = BatchResult()
        awards: dict[str, Incoming] = {}
        for index, raw in enumerate(raws):
            try:
                message = parse_moodle_message(raw)
                if message.data.eventname == USER_DELETED and message.data.relateduserid:
                    self.erase(message.data.relateduserid)
                    continue
                award = decide_award(
                    message.data, message.id, self.rules, self.settings.site_id, self.code_secret
                )
            except InvalidMessage as exc:
                result.invalid.append((index, exc))
                continue
            except NotALearnerCompletion:
                continue
            source = sources[index] if index < len(sources) else ""
            awards.setdefault(award.credential_id, Incoming(index, award, raw, source))  # a redelivery: once
        if not awards:
            return result
        try:
            with self.sessions.begin() as session:
                result.events = self._save_batch(session, list(awards.values()), result)
        except IntegrityError:
            # Another worker saved one of these awards or took a status slot first: the retry sees it.
            raise TransientError("a concurrent worker saved the same award or status slot") from None
        return result

    def _save_batch(self, session: Session, awards: list[Incoming], result: BatchResult) -> list[OutboxRow]:
        repo = AwardRepository(session)
        existing = repo.existing([a.award for a in awards])
        learner_ids = {a.award.learner_id for a in awards}
        learners = repo.learners(learner_ids)
        courses = repo.courses({a.award.course_id for a in awards})  # also for the render requests
        waiting = repo.waiting_learners(learner_ids)  # have parked messages: later ones queue behind
        new: list[tuple[Award, Learner]] = []
        for incoming in awards:
            award = incoming.award
            if award.credential_id in existing:
                continue
            missing = missing_profile(award, learners, courses)
            if missing or award.learner_id in waiting:
                reason = missing or "behind this learner's earlier parked messages"
                repo.park(parked_row(award, incoming.raw, incoming.source, reason))
                waiting.add(award.learner_id)
                result.parked.append(incoming.index)
                continue
            new.append((award, learners[award.learner_id]))
        saved = list(existing.values())
        return self._issue(session, new) + (repo.pending_events_of(saved) if saved else [])

    def _issue(self, session: Session, new: list[tuple[Award, Learner]]) -> list[OutboxRow]:
        """New awards with their signed credentials and outbox events, added to the caller's transaction."""
        store = self._store(session)
        # Slots first, rows last: no flush in between, so the inserts go out in bulk at commit.
        entries = store.allocate_status_entries([a.credential_id for a, _l in new])
        return [
            event
            for award, learner in new
            for event in self._save_new(session, store, award, learner, entries[award.credential_id])
        ]

    # --- parked messages ---------------------------------------------------------------------------------

    def resume_parked(
        self, learner_ids: set[int] | None = None, course_id: int | None = None
    ) -> list[OutboxRow]:
        """Issues what the learners' parked messages earn, in order, as far as their profiles allow (all
        waiting learners, these learners, or those waiting on this course). One transaction per learner, so
        one learner's trouble holds no one else up: an outage is raised (the caller pauses), anything else
        is logged and the learner's messages stay parked, counted and visible. Returns the events to
        announce."""
        with self.sessions() as session:
            learners = AwardRepository(session).parked_learners(learner_ids, course_id)
        events: list[OutboxRow] = []
        for learner_id in learners:
            try:
                events += self._resume_learner(learner_id)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.exception("parked messages of learner %d cannot be issued; they stay parked", learner_id)
        return events

    def _resume_learner(self, learner_id: int) -> list[OutboxRow]:
        try:
            with self.sessions.begin() as session:
                repo = AwardRepository(session)
                parked = repo.parked_of(learner_id)
                ready, existing = self._ready(session, parked)
                events = self._issue(session, ready)
                return events + (repo.pending_events_of(existing) if existing else [])
        except IntegrityError:
            raise TransientError("a concurrent worker saved the same award or status slot") from None

    def _ready(
        self, session: Session, parked: list[ParkedMessageRow]
    ) -> tuple[list[tuple[Award, Learner]], list[str]]:
        """The leading parked messages whose profiles are there now (removed from the park), up to the first
        that must still wait: the new awards to issue and the ids of those issued already."""
        repo = AwardRepository(session)
        ready: list[tuple[Award, Learner]] = []
        existing: list[str] = []
        for row in parked:
            try:
                message = parse_moodle_message(row.payload.encode())
                award = decide_award(
                    message.data, message.id, self.rules, self.settings.site_id, self.code_secret
                )
            except (InvalidMessage, NotALearnerCompletion):  # the rule went away meanwhile: nothing to do
                session.delete(row)
                continue
            if award.credential_id in {a.credential_id for a, _l in ready}:
                session.delete(row)
                continue
            if saved := repo.existing([award]):
                existing += saved.values()
                session.delete(row)
                continue
            learners, courses = repo.learners({award.learner_id}), repo.courses({award.course_id})
            if missing_profile(award, learners, courses):
                break
            ready.append((award, learners[award.learner_id]))
            session.delete(row)
        return ready, existing

    def parked_count(self) -> int:
        with self.sessions() as session:
            return AwardRepository(session).parked_count()

    def _save_new(
        self,
        session: Session,
        store: CredentialStore,
        award: Award,
        learner: Learner,
        status_entry: tuple[int, int],
    ) -> list[OutboxRow]:
        """The award, its signed credentials and its outbox events, added to the caller's transaction."""
        row = self._award_row(award, learner, status_entry)
        facts = store.facts(row, learner)
        signed = self.signer.sign(facts) if self.settings.formats else []
        events = self._announcements(AwardRepository(session), award, row, signed)
        session.add_all([row, *self._signed_rows(award, signed), *events])
        return events

    def _award_row(self, award: Award, learner: Learner, status_entry: tuple[int, int]) -> AwardRow:
        salt = new_salt()
        days = award.rule.valid_for_days
        return AwardRow(
            credential_id=award.credential_id,
            verification_code=award.verification_code,
            learner_id=award.learner_id,
            course_id=award.course_id,
            rule_id=award.rule.id,
            achievement_name=award.rule.name,
            issued_on=award.issued_on,
            status="issued",
            source_event_id=award.source_event_id,
            created_at=datetime.now(UTC),
            recipient_salt=salt,
            recipient_hash=recipient_hash(learner.email, salt),
            valid_until=award.issued_on + timedelta(days=days) if days else None,
            status_list=status_entry[0],
            status_index=status_entry[1],
        )

    @staticmethod
    def _signed_rows(award: Award, signed: list[Signed]) -> list[SignedCredentialRow]:
        now = datetime.now(UTC)
        return [
            SignedCredentialRow(
                credential_id=award.credential_id,
                format=s.format,
                document=s.document,
                verification_method=s.verification_method,
                signed_at=now,
            )
            for s in signed
        ]

    def _announcements(
        self, repo: AwardRepository, award: Award, row: AwardRow, signed: list[Signed]
    ) -> list[OutboxRow]:
        issued = self._issued(award, row, [s.format for s in signed])
        events = [self._outbox(CREDENTIALS, str(award.learner_id), issued, award.credential_id)]
        if award.rule.certificate:
            proof = next((s.document for s in signed if s.format == DATA_INTEGRITY), None)
            request = self._render_request(repo, award, proof)
            events.append(self._outbox(RENDER_REQUESTS, award.credential_id, request, award.credential_id))
        return events

    def _issued(self, award: Award, row: AwardRow, formats: list[str]) -> CredentialIssuedMessage:
        rule = award.rule
        return CredentialIssuedMessage.build(
            id=deterministic_id("credential.issued", award.credential_id),
            source=SOURCE,
            subject=award.credential_id,
            time=award.issued_on,
            data=CredentialIssued(
                credential_id=award.credential_id,
                learner_id=award.learner_id,
                course_id=award.course_id,
                achievement=Achievement(
                    id=rule.id,
                    name=rule.name,
                    description=rule.description,
                    criteria=rule.criteria,
                    badge_image=rule.badge_image,
                ),
                issued_on=award.issued_on,
                verification_code=award.verification_code,
                verify_url=self.settings.verify_url(award.verification_code),
                badge=rule.badge,
                certificate=rule.certificate,
                valid_until=row.valid_until,
                assertion_url=self.urls.ob2_assertion(award.verification_code) if rule.badge else None,
                formats=formats,
            ),
        )

    def rerender(self, course_id: int | None = None, rule_id: str | None = None) -> int:
        """Queues a re-render of every certificate of a course or rule (after a template change).

        The requests go to the outbox; the issuer's relay announces them. A PDF that comes out different
        is stored as a new version; the old one stays retrievable. Revoked credentials are left as they are.
        """
        if (course_id is None) == (rule_id is None):
            raise ValueError("re-render one course or one rule")
        run = uuid.uuid4().hex
        rules = {r.id: r for r in self.rules.rules if r.certificate}
        with self.sessions.begin() as session:
            repo, store = AwardRepository(session), self._store(session)
            query = select(AwardRow).where(AwardRow.status != "revoked", AwardRow.rule_id.in_(list(rules)))
            query = (
                query.where(AwardRow.course_id == course_id)
                if course_id is not None
                else query.where(AwardRow.rule_id == rule_id)
            )
            rows = session.scalars(query).all()
            for row in rows:
                award = Award(
                    credential_id=row.credential_id,
                    verification_code=row.verification_code,
                    learner_id=row.learner_id,
                    course_id=row.course_id,
                    rule=rules[row.rule_id],
                    issued_on=as_utc(row.issued_on),
                    source_event_id=row.source_event_id,
                )
                signed = store.signed(row.credential_id, DATA_INTEGRITY)
                request = self._render_request(repo, award, signed.document if signed else None, run)
                session.add(self._outbox(RENDER_REQUESTS, row.credential_id, request, row.credential_id))
            return len(rows)

    def _render_request(
        self, repo: AwardRepository, award: Award, credential_json: str | None, rerun: str | None = None
    ) -> CertificateRenderRequestMessage:
        learner, course = repo.learner(award.learner_id), repo.course(award.course_id)
        if learner is None or course is None:
            # Not for a new award (parked until the profiles are there): a re-render of an erased learner.
            missing = f"learner {award.learner_id}" if learner is None else f"course {award.course_id}"
            raise TransientError(f"no profile for {missing}: cannot name the certificate yet")
        lang = learner.lang if learner.lang in ("pl", "en") else award.rule.language
        micro = award.rule.microcredential
        return CertificateRenderRequestMessage.build(
            id=deterministic_id(
                "certificate.render_requested",
                award.credential_id,
                award.rule.certificate_template,
                *([rerun] if rerun else []),
            ),
            source=SOURCE,
            subject=award.credential_id,
            time=award.issued_on,
            data=CertificateRenderRequest(
                credential_id=award.credential_id,
                verification_code=award.verification_code,
                verify_url=self.settings.verify_url(award.verification_code),
                learner_name=f"{learner.firstname} {learner.lastname}",
                course_name=course.fullname,
                achievement_name=award.rule.name,
                achievement_description=award.rule.description,
                issued_on=award.issued_on,
                awarding_body=self.rules.issuer.name,
                template=award.rule.certificate_template,
                language=lang,
                credential_json=credential_json,
                learning_outcomes=micro.learning_outcomes,
                ects=micro.ects,
                hours=micro.hours,
                eqf_level=micro.eqf_level,
                rerender=rerun is not None,
            ),
        )

    def _outbox(self, topic: str, key: str, message: Announcement, credential_id: str) -> OutboxRow:
        return OutboxRow(
            event_id=message.id,
            credential_id=credential_id,
            topic=self.settings.topic(topic),
            key=key,
            payload=message.model_dump_json(),
            created_at=datetime.now(UTC),
        )

    def erase(self, learner_id: int) -> int:
        """Right to erasure (Moodle's user_deleted): S3 objects first, then the rows, so a crash in between
        is repaired by the redelivered event. Returns how many objects were deleted."""
        with self.sessions() as session:
            erasure = plan_erasure(session, learner_id)
        for key in erasure.object_keys:
            self.objects.delete(key)
        with self.sessions.begin() as session:
            erase_rows(session, erasure)
            AwardRepository(session).drop_parked(learner_id)
        return len(erasure.object_keys)

    @cached_property
    def objects(self) -> ObjectStore:
        return ObjectStore(self.settings)

    def apply_profile(self, kind: str, key: bytes | None, value: bytes | None) -> int | None:
        """A message of the compacted profile topics: the issuer's view of learners and courses. Returns
        the learner's or course's id (to resume what waits for it), None for a tombstone.

        A tombstone (no value) only tells compaction to drop the key; erasure comes with user_deleted."""
        if value is None:
            return None
        if kind == "user":
            user = parse_message(MoodleUserMessage, value).data
            store_profiles(self.sessions, Profiles(users=[user], courses=[]))
            return user.id
        course = parse_message(MoodleCourseMessage, value).data
        store_profiles(self.sessions, Profiles(users=[], courses=[course]))
        return course.id

    def revoke(self, code_or_id: str, reason: str, now: datetime | None = None) -> AwardRow:
        """Revokes with a reason and saves the revoked event in the outbox (the relay announces it)."""
        if not reason.strip():
            raise ValueError("a revocation needs a reason: it is shown to everyone who checks the credential")
        now = now or datetime.now(UTC)
        with self.sessions.begin() as session:
            award = self._store(session).find(code_or_id)
            if award is None:
                raise CredentialNotFound(f"no credential with code or id {code_or_id!r}")
            if award.status == "revoked":
                return award  # idempotent: the first reason stands
            award.status, award.revoked_at, award.revocation_reason = "revoked", now, reason.strip()
            message = CredentialRevokedMessage.build(
                id=deterministic_id("credential.revoked", award.credential_id),
                source=SOURCE,
                subject=award.credential_id,
                time=now,
                data=CredentialRevoked(
                    credential_id=award.credential_id,
                    learner_id=award.learner_id,
                    verification_code=award.verification_code,
                    reason=award.revocation_reason,
                    revoked_at=now,
                ),
            )
            session.add(self._outbox(CREDENTIALS, str(award.learner_id), message, award.credential_id))
            return award

    def expire_due(self, now: datetime | None = None, limit: int = 500) -> int:
        """Marks credentials past their validity as expired, each with one expired event in the outbox."""
        now = now or datetime.now(UTC)
        with self.sessions.begin() as session:
            due = session.scalars(
                select(AwardRow).where(AwardRow.status == "issued", AwardRow.valid_until <= now).limit(limit)
            ).all()
            for award in due:
                award.status = "expired"
                assert award.valid_until is not None
                message = CredentialExpiredMessage.build(
                    id=deterministic_id("credential.expired", award.credential_id),
                    source=SOURCE,
                    subject=award.credential_id,
                    time=now,
                    data=CredentialExpired(
                        credential_id=award.credential_id,
                        learner_id=award.learner_id,
                        verification_code=award.verification_code,
                        valid_until=award.valid_until,
                    ),
                )
                session.add(self._outbox(CREDENTIALS, str(award.learner_id), message, award.credential_id))
            return len(due)

    def mark_sent(self, event_ids: list[str]) -> None:
        with self.sessions.begin() as session:
            AwardRepository(session).mark_sent(event_ids)

    def stale_events(self, older_than_seconds: float) -> list[OutboxRow]:
        """Saved but never announced (the worker died in between): the relay sends them."""
        cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_seconds, UTC)
        with self.sessions() as session:
            return AwardRepository(session).pending_events(older_than=cutoff)


def missing_profile(award: Award, learners: dict[int, Learner], courses: dict[int, Course]) -> str | None:
    """What this award still waits for: the learner's profile, and the course's for a certificate."""
    if award.learner_id not in learners:
        return f"no profile for learner {award.learner_id} yet"
    if award.rule.certificate and award.course_id not in courses:
        return f"no profile for course {award.course_id} yet (the certificate names it)"
    return None


def parked_row(award: Award, raw: bytes, source: str, reason: str) -> ParkedMessageRow:
    return ParkedMessageRow(
        learner_id=award.learner_id,
        course_id=award.course_id,
        event_id=award.source_event_id[:200],
        source=source[:300],
        reason=reason,
        payload=raw.decode("utf-8"),
        parked_at=datetime.now(UTC),
    )
