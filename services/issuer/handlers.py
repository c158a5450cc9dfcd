"""The issuer's use cases, one function each, over a unit of work (unit_of_work.py) and the installation's
parts (`Context`): awarding a batch of Moodle events, resuming parked completions, re-rendering,
applying a profile, erasure, revocation, expiry, and the outbox relay's reads and marks.

Awarding: parse -> is it a learner completion with a rule? -> save the award, its signed credentials and
its outbox events in one transaction -> return the unsent outbox events (also on redelivery: that is how
a crash between "saved" and "announced" is repaired). Revocation, expiry and re-render requests go
through the same outbox, announced by the agent's relay.

A completion whose learner (or, for a certificate, course) profile has not arrived yet is parked, per
learner and in order, in the same transaction: the stream flows on, and `resume_parked` issues it when the
profile is there (the profile agents and a timer call it). A learner with parked messages gets every later
completion parked behind them, so one learner's order is kept.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from ebackpack.adapters.credential_store import credential_facts
from ebackpack.adapters.persistence import tables
from ebackpack.bootstrap import Platform
from ebackpack.config import Settings
from ebackpack.domain.credentials.facts import CredentialFacts, as_utc, new_salt, recipient_hash
from ebackpack.domain.credentials.signer import DATA_INTEGRITY, CredentialSigner, Signed
from ebackpack.domain.rules import RuleBook
from ebackpack.streaming.errors import InvalidMessage, TransientError, is_transient, parse_message
from ebackpack.streaming.topics import CREDENTIALS, RENDER_REQUESTS
from schemas import (
    CertificateRenderRequestMessage,
    MoodleCourseMessage,
    MoodleEventMessage,
    MoodleUserMessage,
)
from schemas.credentials import BACKFILL, LIVE, Origin
from schemas.moodle import USER_DELETED, Profiles

from . import messages
from .domain import Award, NotALearnerCompletion, decide_award
from .unit_of_work import AbstractUnitOfWork, WriteConflict

log = logging.getLogger(__name__)
CONCURRENT_SAVE = "a concurrent worker saved the same award or status slot"


class CredentialNotFound(LookupError):
    pass


class Context:
    """What the handlers need besides a unit of work: the award rules and the installation's identity
    (site, secret, keys, addresses), taken from the platform when first used, so a use case that signs
    nothing never loads the keys."""

    def __init__(self, platform: Platform, signer: CredentialSigner | None = None):
        self.platform = platform
        if signer is not None:
            self.signer = signer

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    @property
    def rules(self) -> RuleBook:
        return self.platform.rules

    @cached_property
    def signer(self) -> CredentialSigner:
        return CredentialSigner(self.platform.keys, self.settings.formats)

    def award(self, message: MoodleEventMessage, origin: Origin = LIVE) -> Award:
        """Raises NotALearnerCompletion for an event that earns nothing."""
        return decide_award(
            message.data, message.id, self.rules, self.settings.site_id, self.platform.code_secret, origin
        )

    def facts(self, row: tables.AwardRow, learner: tables.Learner) -> CredentialFacts:
        facts = credential_facts(
            row,
            learner,
            self.rules,
            self.settings.site_id,
            self.platform.code_secret,
            self.platform.urls,
        )
        assert facts is not None, "a new award has its rule, recipient salt and status entry"
        return facts


@dataclass
class BatchResult:
    events: list[tables.OutboxRow] = field(default_factory=list)  # to announce
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


# --- awarding ------------------------------------------------------------------------------------------


def award_batch(
    uow: AbstractUnitOfWork,
    ctx: Context,
    raws: Sequence[bytes],
    sources: Sequence[str] = (),
    render_topic: str = RENDER_REQUESTS,
    origin: Origin = LIVE,
) -> BatchResult:
    """Many messages, one transaction: the awards they earn, signed, with their outbox events, and the
    completions that must wait for a profile, parked.

    Invalid messages are left out and reported, so the caller can dead-letter them; the rest is
    committed together. New certificates' render requests go to `render_topic`: the backfill lane's to
    RENDER_REQUESTS_BACKFILL, which the renderer takes only while no live request waits. `origin` is the
    lane the messages came on: their `credential.issued` events say it (the notifier sends no "new
    credential" message for history unless configured to), and a parked completion keeps it until it
    is issued.
    """
    result = BatchResult()
    awards: dict[str, Incoming] = {}
    for index, raw in enumerate(raws):
        try:
            message = parse_moodle_message(raw)
            if message.data.eventname == USER_DELETED and message.data.relateduserid:
                erase(uow, ctx, message.data.relateduserid)
                continue
            award = ctx.award(message, origin)
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
        with uow:
            result.events = _save_batch(uow, ctx, list(awards.values()), result, render_topic)
            uow.commit()
    except WriteConflict:
        # Another worker saved one of these awards or took a status slot first: the retry sees it.
        raise TransientError(CONCURRENT_SAVE) from None
    return result


def _save_batch(
    uow: AbstractUnitOfWork, ctx: Context, awards: list[Incoming], result: BatchResult, render_topic: str
) -> list[tables.OutboxRow]:
    existing = uow.awards.existing([a.award for a in awards])
    learner_ids = {a.award.learner_id for a in awards}
    learners = uow.profiles.learners(learner_ids)
    courses = uow.profiles.courses({a.award.course_id for a in awards})  # also for the render requests
    waiting = uow.parked.waiting_learners(learner_ids)  # have parked messages: later ones queue behind
    new: list[tuple[Award, tables.Learner]] = []
    for incoming in awards:
        award = incoming.award
        if award.credential_id in existing:
            continue
        missing = missing_profile(award, learners, courses)
        if missing or award.learner_id in waiting:
            reason = missing or "behind this learner's earlier parked messages"
            uow.parked.park(parked_row(award, incoming.raw, incoming.source, reason))
            waiting.add(award.learner_id)
            result.parked.append(incoming.index)
            continue
        new.append((award, learners[award.learner_id]))
    saved = list(existing.values())
    return _issue(uow, ctx, new, render_topic) + (uow.outbox.pending_of(saved) if saved else [])


def _issue(
    uow: AbstractUnitOfWork,
    ctx: Context,
    new: list[tuple[Award, tables.Learner]],
    render_topic: str = RENDER_REQUESTS,
) -> list[tables.OutboxRow]:
    """New awards with their signed credentials and outbox events, added to the caller's transaction."""
    # Slots first, rows last: no flush in between, so the inserts go out in bulk at commit.
    entries = uow.status_slots.allocate([a.credential_id for a, _l in new])
    return [
        event
        for award, learner in new
        for event in _save_new(uow, ctx, award, learner, entries[award.credential_id], render_topic)
    ]


def _save_new(
    uow: AbstractUnitOfWork,
    ctx: Context,
    award: Award,
    learner: tables.Learner,
    status_entry: tuple[int, int],
    render_topic: str,
) -> list[tables.OutboxRow]:
    """The award, its signed credentials and its outbox events, added to the caller's transaction."""
    row = award_row(award, learner, status_entry)
    signed = ctx.signer.sign(ctx.facts(row, learner)) if ctx.settings.formats else []
    events = _announcements(uow, ctx, award, row, signed, render_topic)
    uow.awards.add(row, signed_rows(award, signed))
    uow.outbox.add(events)
    return events


def _announcements(
    uow: AbstractUnitOfWork,
    ctx: Context,
    award: Award,
    row: tables.AwardRow,
    signed: list[Signed],
    render_topic: str,
) -> list[tables.OutboxRow]:
    formats = [s.format for s in signed]
    issued = messages.credential_issued(award, row.valid_until, formats, ctx.settings, ctx.platform.urls)
    events = [
        messages.outbox_row(ctx.settings, CREDENTIALS, str(award.learner_id), issued, award.credential_id)
    ]
    if award.rule.certificate:
        proof = next((s.document for s in signed if s.format == DATA_INTEGRITY), None)
        request = _render_request(uow, ctx, award, proof)
        events.append(
            messages.outbox_row(ctx.settings, render_topic, award.credential_id, request, award.credential_id)
        )
    return events


def _render_request(
    uow: AbstractUnitOfWork, ctx: Context, award: Award, credential_json: str | None, rerun: str | None = None
) -> CertificateRenderRequestMessage:
    learner, course = uow.profiles.learner(award.learner_id), uow.profiles.course(award.course_id)
    if learner is None or course is None:
        # Not for a new award (parked until the profiles are there): a re-render of an erased learner.
        missing = f"learner {award.learner_id}" if learner is None else f"course {award.course_id}"
        raise TransientError(f"no profile for {missing}: cannot name the certificate yet")
    return messages.render_request(
        award, learner, course, credential_json, ctx.rules.issuer, ctx.settings, rerun
    )


def award_row(award: Award, learner: tables.Learner, status_entry: tuple[int, int]) -> tables.AwardRow:
    salt = new_salt()
    days = award.rule.valid_for_days
    return tables.AwardRow(
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


def signed_rows(award: Award, signed: list[Signed]) -> list[tables.SignedCredentialRow]:
    now = datetime.now(UTC)
    return [
        tables.SignedCredentialRow(
            credential_id=award.credential_id,
            format=s.format,
            document=s.document,
            verification_method=s.verification_method,
            signed_at=now,
        )
        for s in signed
    ]


# --- parked completions --------------------------------------------------------------------------------


def resume_parked(
    uow: AbstractUnitOfWork, ctx: Context, learner_ids: set[int] | None = None, course_id: int | None = None
) -> list[tables.OutboxRow]:
    """Issues what the learners' parked messages earn, in order, as far as their profiles allow (all
    waiting learners, these learners, or those waiting on this course). One transaction per learner, so
    one learner's trouble holds no one else up: an outage is raised (the caller pauses), anything else
    is logged and the learner's messages stay parked, counted and visible. Returns the events to
    announce."""
    with uow:
        learners = uow.parked.ready_learners(learner_ids, course_id)
    events: list[tables.OutboxRow] = []
    for learner_id in learners:
        try:
            events += _resume_learner(uow, ctx, learner_id)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("parked messages of learner %d cannot be issued; they stay parked", learner_id)
    return events


def _resume_learner(uow: AbstractUnitOfWork, ctx: Context, learner_id: int) -> list[tables.OutboxRow]:
    try:
        with uow:
            ready, existing = _ready(uow, ctx, uow.parked.of_learner(learner_id))
            events = _issue(uow, ctx, ready) + (uow.outbox.pending_of(existing) if existing else [])
            uow.commit()
            return events
    except WriteConflict:
        raise TransientError(CONCURRENT_SAVE) from None


def _ready(
    uow: AbstractUnitOfWork, ctx: Context, parked: list[tables.ParkedMessageRow]
) -> tuple[list[tuple[Award, tables.Learner]], list[str]]:
    """The leading parked messages whose profiles are there now (removed from the park), up to the first
    that must still wait: the new awards to issue and the ids of those issued already."""
    ready: list[tuple[Award, tables.Learner]] = []
    existing: list[str] = []
    for row in parked:
        try:
            award = ctx.award(parse_moodle_message(row.payload.encode()), _origin(row.origin))
        except (InvalidMessage, NotALearnerCompletion):  # the rule went away meanwhile: nothing to do
            uow.parked.remove(row)
            continue
        if award.credential_id in {a.credential_id for a, _l in ready}:
            uow.parked.remove(row)
            continue
        if saved := uow.awards.existing([award]):
            existing += saved.values()
            uow.parked.remove(row)
            continue
        learners = uow.profiles.learners({award.learner_id})
        courses = uow.profiles.courses({award.course_id})
        if missing_profile(award, learners, courses):
            break
        ready.append((award, learners[award.learner_id]))
        uow.parked.remove(row)
    return ready, existing


def _origin(stored: str | None) -> Origin:
    """A parked row's lane; one parked before the lane was kept (or a value this version does not know)
    reads as live."""
    return BACKFILL if stored == BACKFILL else LIVE


def parked_count(uow: AbstractUnitOfWork) -> int:
    with uow:
        return uow.parked.count()


def missing_profile(
    award: Award, learners: dict[int, tables.Learner], courses: dict[int, tables.Course]
) -> str | None:
    """What this award still waits for: the learner's profile, and the course's for a certificate."""
    if award.learner_id not in learners:
        return f"no profile for learner {award.learner_id} yet"
    if award.rule.certificate and award.course_id not in courses:
        return f"no profile for course {award.course_id} yet (the certificate names it)"
    return None


def parked_row(award: Award, raw: bytes, source: str, reason: str) -> tables.ParkedMessageRow:
    return tables.ParkedMessageRow(
        learner_id=award.learner_id,
        course_id=award.course_id,
        event_id=award.source_event_id[:200],
        source=source[:300],
        reason=reason,
        payload=raw.decode("utf-8"),
        parked_at=datetime.now(UTC),
        origin=award.origin,
    )


# --- certificates --------------------------------------------------------------------------------------


def rerender(
    uow: AbstractUnitOfWork, ctx: Context, course_id: int | None = None, rule_id: str | None = None
) -> int:
    """Queues a re-render of every certificate of a course or rule (after a template change).

    The requests go to the outbox; the issuer's relay announces them. A PDF that comes out different
    is stored as a new version; the old one stays retrievable. Revoked credentials are left as they are.
    """
    if (course_id is None) == (rule_id is None):
        raise ValueError("re-render one course or one rule")
    run = uuid.uuid4().hex
    rules = {r.id: r for r in ctx.rules.rules if r.certificate}
    with uow:
        rows = uow.awards.not_revoked(list(rules), course_id=course_id, rule_id=rule_id)
        # An erased learner has no profile left to print: their certificate is not rendered again (and a
        # re-render command must not wait for a profile that will never come).
        rows = [r for r in rows if uow.profiles.learner(r.learner_id) and uow.profiles.course(r.course_id)]
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
            proof = uow.awards.signed_document(row.credential_id, DATA_INTEGRITY)
            request = _render_request(uow, ctx, award, proof, run)
            uow.outbox.add(
                [
                    messages.outbox_row(
                        ctx.settings, RENDER_REQUESTS, row.credential_id, request, row.credential_id
                    )
                ]
            )
        uow.commit()
        return len(rows)


# --- profiles and erasure ------------------------------------------------------------------------------


def apply_profile(uow: AbstractUnitOfWork, kind: str, value: bytes | None) -> int | None:
    """A message of the compacted profile topics: the issuer's view of learners and courses. Returns
    the learner's or course's id (to resume what waits for it), None for a tombstone.

    A tombstone (no value) only tells compaction to drop the key; erasure comes with user_deleted."""
    if value is None:
        return None
    if kind == "user":
        user = parse_message(MoodleUserMessage, value).data
        profiles, profile_id = Profiles(users=[user], courses=[]), user.id
    else:
        course = parse_message(MoodleCourseMessage, value).data
        profiles, profile_id = Profiles(users=[], courses=[course]), course.id
    with uow:
        uow.profiles.save(profiles)
        uow.commit()
    return profile_id


def erase(uow: AbstractUnitOfWork, ctx: Context, learner_id: int) -> int:
    """Right to erasure (Moodle's user_deleted), see privacy.py: the issuer's part of the learner's data
    and their parked completions go, and `learner.erased` and `credential.erased` are saved in the
    outbox, in one transaction; the relay announces them and every other owner erases its part.
    Returns how many events were saved (none for a redelivered user_deleted)."""
    try:
        with uow:
            events = uow.erasures.erase(
                learner_id, topic=ctx.settings.topic, source=messages.SOURCE, now=datetime.now(UTC)
            )
            uow.parked.drop(learner_id)
            uow.commit()
    except WriteConflict:  # another worker saved the same erasure events: the retry finds them
        raise TransientError(f"a concurrent worker erased learner {learner_id}") from None
    return len(events)


# --- credential status ---------------------------------------------------------------------------------


def revoke(
    uow: AbstractUnitOfWork, ctx: Context, code_or_id: str, reason: str, now: datetime | None = None
) -> tables.AwardRow:
    """Revokes with a reason and saves the revoked event in the outbox (the relay announces it)."""
    if not reason.strip():
        raise ValueError("a revocation needs a reason: it is shown to everyone who checks the credential")
    now = now or datetime.now(UTC)
    with uow:
        award = uow.awards.find(code_or_id)
        if award is None:
            raise CredentialNotFound(f"no credential with code or id {code_or_id!r}")
        if award.status == "revoked":
            return award  # idempotent: the first reason stands
        award.status, award.revoked_at, award.revocation_reason = "revoked", now, reason.strip()
        message = messages.credential_revoked(award, now)
        uow.outbox.add(
            [
                messages.outbox_row(
                    ctx.settings, CREDENTIALS, str(award.learner_id), message, award.credential_id
                )
            ]
        )
        uow.commit()
        return award


def expire_due(uow: AbstractUnitOfWork, ctx: Context, now: datetime | None = None, limit: int = 500) -> int:
    """Marks credentials past their validity as expired, each with one expired event in the outbox."""
    now = now or datetime.now(UTC)
    with uow:
        due = uow.awards.due_to_expire(now, limit)
        for award in due:
            award.status = "expired"
            assert award.valid_until is not None
            message = messages.credential_expired(award, award.valid_until, now)
            uow.outbox.add(
                [
                    messages.outbox_row(
                        ctx.settings, CREDENTIALS, str(award.learner_id), message, award.credential_id
                    )
                ]
            )
        uow.commit()
        return len(due)


# --- the outbox relay ----------------------------------------------------------------------------------


def mark_sent(uow: AbstractUnitOfWork, event_ids: list[str]) -> None:
    with uow:
        uow.outbox.mark_sent(event_ids)
        uow.commit()


def stale_events(uow: AbstractUnitOfWork, older_than_seconds: float) -> list[tables.OutboxRow]:
    """Saved but never announced (the worker died in between): the relay sends them."""
    cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_seconds, UTC)
    with uow:
        return uow.outbox.pending(older_than=cutoff)
