"""Internal learner events on `learners.erased`, keyed by learner: the issuer tells every service that
keeps data of a learner to delete it (the right to erasure)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, Field

from .envelope import CloudEvent


class LearnerErased(BaseModel):
    learner_id: int = Field(description="The Moodle user id whose data every owner deletes.")
    credential_ids: list[str] = Field(
        default_factory=list,
        description="The learner's credentials: data kept per credential (PDFs, links) goes too. Their "
        "public part (award, status) stays with the issuer, naming no one.",
    )
    erased_at: datetime = Field(description="When the issuer erased its own part.")


class LearnerErasedMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.learner.erased.v1"
    data: LearnerErased
