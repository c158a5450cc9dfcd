"""Credential state in SQL, read by the issuer, the backpack and the CLI alike.

The award row is the truth: its status, validity and status-list entry decide what the status list,
the OB 2.0 hosted JSON and the verification page say, so they cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, overload

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.adapters.persistence.tables import AwardRow, Course, Learner, SignedCredentialRow
from ebackpack.config import Settings
from ebackpack.domain.credentials import statuslist
from ebackpack.domain.credentials.facts import CredentialFacts, as_utc, learner_subject_id
from ebackpack.domain.credentials.ob2 import Revoked
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import RuleBook

Status = Literal["valid", "revoked", "expired"]
PROBE = 64  # status indexes tried around a credential's preferred slot before moving to the next list


def normalize_code(code: str) -> str:
    """`abcd efgh-ijkl` -> `ABCD-EFGH-IJKL`: people type codes with spaces and in lower case."""
    wanted = "".join(ch for ch in code.upper() if ch.isalnum())
    return "-".join(wanted[i : i + 4] for i in range(0, len(wanted), 4))


def award_by_code(session: Session, code: str) -> AwardRow | None:
    """The award a printed (or typed) verification code names."""
    query = select(AwardRow).where(AwardRow.verification_code == normalize_code(code))
    return session.scalars(query).one_or_none()


def status_of(award: AwardRow, now: datetime) -> Status:
    if award.status == "revoked":
        return "revoked"
    if award.status == "expired" or (award.valid_until is not None and as_utc(award.valid_until) <= now):
        return "expired"
    return "valid"


def credential_facts(
    award: AwardRow, learner: Learner, rules: RuleBook, site: str, secret: bytes, urls: PublicUrls
) -> CredentialFacts | None:
    """What a credential of this award says (no database needed: the issuer signs new awards with it
    before they are saved). None for awards saved before credentials were signed (no salt, no status
    entry) or whose rule is gone."""
    rule = next((r for r in rules.rules if r.id == award.rule_id), None)
    if (
        rule is None
        or award.recipient_salt is None
        or award.recipient_hash is None
        or award.status_list is None
        or award.status_index is None
    ):
        return None
    return CredentialFacts(
        credential_id=award.credential_id,
        verification_code=award.verification_code,
        rule=rule,
        issuer=rules.issuer,
        learner_subject_id=learner_subject_id(site, award.learner_id, secret),
        learner_name=f"{learner.firstname} {learner.lastname}",
        recipient_salt=award.recipient_salt,
        recipient_hash=award.recipient_hash,
        issued_on=as_utc(award.issued_on),
        valid_until=as_utc(award.valid_until) if award.valid_until else None,
        status_list=award.status_list,
        status_index=award.status_index,
        urls=urls,
    )


class CredentialStore:
    def __init__(
        self,
        session: Session,
        rules: RuleBook,
        site: str,
        urls: PublicUrls,
        secret: bytes,
        moodle_url: str = "",
    ):
        self.session, self.rules, self.site, self.urls = session, rules, site, urls
        self.secret = secret  # keys the learner's subject id
        self.moodle_url = (moodle_url or f"https://{site}").rstrip("/")

    @classmethod
    def for_settings(cls, session: Session, rules: RuleBook, settings: Settings) -> CredentialStore:
        return cls(
            session,
            rules,
            settings.site_id,
            PublicUrls(settings.public_url),
            code_secret_for(settings),
            settings.moodle_url,
        )

    def award(self, credential_id: str) -> AwardRow | None:
        return self.session.get(AwardRow, credential_id)

    def award_by_code(self, code: str) -> AwardRow | None:
        return award_by_code(self.session, code)

    def find(self, code_or_id: str) -> AwardRow | None:
        return self.award(code_or_id) or self.award_by_code(code_or_id)

    def learner(self, learner_id: int) -> Learner | None:
        return self.session.get(Learner, learner_id)

    def course(self, course_id: int) -> Course | None:
        return self.session.get(Course, course_id)

    def course_url(self, course_id: int) -> str:
        return f"{self.moodle_url}/course/view.php?id={course_id}"

    def signed(self, credential_id: str, fmt: str) -> SignedCredentialRow | None:
        return self.session.get(SignedCredentialRow, (credential_id, fmt))

    @overload
    def facts(self, award: AwardRow) -> CredentialFacts | None: ...

    @overload
    def facts(self, award: AwardRow, learner: Learner) -> CredentialFacts: ...

    def facts(self, award: AwardRow, learner: Learner | None = None) -> CredentialFacts | None:
        """None for awards saved before credentials were signed (no salt, no status entry)."""
        learner = learner or self.learner(award.learner_id)
        if learner is None:
            return None
        return credential_facts(award, learner, self.rules, self.site, self.secret, self.urls)

    def revoked_indexes(self, status_list: int) -> list[int]:
        query = select(AwardRow.status_index).where(
            AwardRow.status_list == status_list, AwardRow.status == "revoked"
        )
        return [i for i in self.session.scalars(query) if i is not None]

    def revoked(self) -> list[Revoked]:
        query = select(AwardRow).where(AwardRow.status == "revoked").order_by(AwardRow.revoked_at)
        return [Revoked(a.verification_code, a.revocation_reason or "") for a in self.session.scalars(query)]

    def has_status_list(self, number: int) -> bool:
        """One indexed lookup: the status list is fetched on every verification."""
        return bool(self.session.scalar(select(exists().where(AwardRow.status_list == number))))

    def allocate_status_entries(self, credential_ids: list[str]) -> dict[str, tuple[int, int]]:
        """A free (list, index) per credential, near a slot derived from its id: spread out, and one
        query for a whole batch while the lists are sparse.

        Two workers may pick the same free slot; the unique index then rejects one transaction, which
        is retried.
        """
        span = statuslist.LIST_SIZE - PROBE
        preferred = {cid: int(cid.replace("-", ""), 16) % span for cid in credential_ids}
        used = self._used(1, set(preferred.values())) if preferred else set()
        chosen: dict[str, tuple[int, int]] = {}
        for cid, slot in preferred.items():
            entry = (1, slot) if slot not in used else self._probe(slot, set(chosen.values()))
            chosen[cid] = entry
            if entry[0] == 1:
                used.add(entry[1])
        return chosen

    def _used(self, status_list: int, indexes: set[int]) -> set[int]:
        query = select(AwardRow.status_index).where(
            AwardRow.status_list == status_list, AwardRow.status_index.in_(indexes)
        )
        return {i for i in self.session.scalars(query) if i is not None}

    def _probe(self, preferred: int, taken: set[tuple[int, int]]) -> tuple[int, int]:
        """The first free slot after `preferred`, list by list; `taken` = chosen but not yet saved."""
        status_list = 1
        while True:
            window = set(range(preferred, preferred + PROBE))
            used = self._used(status_list, window) | {i for n, i in taken if n == status_list}
            free = min(window - used, default=None)
            if free is not None:
                return status_list, free
            status_list += 1
