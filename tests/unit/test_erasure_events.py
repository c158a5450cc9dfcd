"""The erasure events the issuer saves (services/issuer/privacy.py): what they say, where they go, and
ids that make a second erasure find them saved."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import CredentialErasedMessage, LearnerErasedMessage
from services.issuer.privacy import Erasure, erasure_events

NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)


def events(erasure: Erasure) -> list[tuple[str, str | None, str, str]]:
    rows = erasure_events(erasure, topic=lambda name: f"p.{name}", source="ebackpack/issuer", now=NOW)
    return [(row.topic, row.key, row.credential_id, row.event_id) for row in rows]


def test_one_learner_erased_then_one_credential_erased_per_credential_keyed_by_learner() -> None:
    erasure = Erasure(7, {"c-1": "CODE-1", "c-2": "CODE-2"})
    rows = erasure_events(erasure, topic=lambda name: f"p.{name}", source="ebackpack/issuer", now=NOW)
    learner = LearnerErasedMessage.model_validate_json(rows[0].payload)
    erased = [CredentialErasedMessage.model_validate_json(row.payload) for row in rows[1:]]
    assert (rows[0].topic, learner.data.learner_id, learner.data.credential_ids) == (
        "p.learners.erased",
        7,
        ["c-1", "c-2"],
    )
    assert [(r.topic, r.key) for r in rows] == [("p.learners.erased", "7")] + [("p.credentials", "7")] * 2
    assert [(e.data.credential_id, e.data.verification_code, e.data.learner_id) for e in erased] == [
        ("c-1", "CODE-1", 7),
        ("c-2", "CODE-2", 7),
    ]
    assert [row.event_id for row in rows] == erasure.event_ids  # what a second erasure looks up


def test_ids_are_the_same_for_the_same_erasure_and_new_for_a_credential_issued_since() -> None:
    first = events(Erasure(7, {"c-1": "CODE-1"}))
    assert events(Erasure(7, {"c-1": "CODE-1"})) == first
    later = events(Erasure(7, {"c-1": "CODE-1", "c-3": "CODE-3"}))
    assert later[0][3] != first[0][3]  # a new learner.erased names the new credential too
    assert later[1] == first[1]  # the first credential's erasure is the same event
    assert events(Erasure(8, {}))[0][3] != events(Erasure(9, {}))[0][3]
