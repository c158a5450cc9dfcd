"""CloudEvents 1.0 envelope (structured JSON mode) shared by every message on every topic."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

# Namespace for deterministic ids: the same facts always give the same id.
EBACKPACK_NAMESPACE = uuid.UUID("6f1d3c1e-6a55-4c1b-9a57-2f0b8d0e5b11")


def deterministic_id(*parts: object) -> str:
    return str(uuid.uuid5(EBACKPACK_NAMESPACE, "|".join(str(p) for p in parts)))


def keyed_id(secret: bytes, *parts: object) -> str:
    """Like `deterministic_id`, but only the holder of `secret` can compute it: for ids derived from a
    small space (Moodle user ids) that reach the public, which anyone could otherwise find by trying them
    all against the formula."""
    digest = hmac.new(secret, "|".join(str(p) for p in parts).encode(), hashlib.sha256).hexdigest()
    return deterministic_id("keyed", digest)


class CloudEvent(BaseModel):
    """Base envelope. Subclasses pin `TYPE` (versioned) and the `data` model."""

    # Unknown attributes (CloudEvents extensions, fields added later) are ignored, so that adding an
    # optional envelope attribute never breaks an older reader.
    model_config = ConfigDict(extra="ignore")
    TYPE: ClassVar[str] = ""

    specversion: str = "1.0"
    id: str = Field(description="Unique per event; deterministic, so a re-sent event keeps its id.")
    source: str = Field(description="URI reference of the producing service or Moodle site.")
    type: str = Field(description="Versioned event type, e.g. `pl.ebackpack.credential.issued.v1`.")
    time: datetime
    subject: str | None = Field(None, description="What the event is about (learner or credential id).")
    datacontenttype: str = "application/json"
    data: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass names its event type once, in `TYPE`; its `type` field then accepts only that value
        and defaults to it (a JSON Schema `const`, and the discriminator of unions of messages). Runs
        before pydantic collects the subclass's fields."""
        super().__init_subclass__(**kwargs)
        if "TYPE" in cls.__dict__:
            cls.__annotations__["type"] = Literal[cls.TYPE]
            setattr(cls, "type", cls.TYPE)  # noqa: B010 (a field default, not an attribute of the class API)

    @classmethod
    def build(
        cls, *, id: str, source: str, subject: str | None, data: Any, time: datetime | None = None
    ) -> Self:
        return cls(
            id=id, source=source, type=cls.TYPE, subject=subject, data=data, time=time or datetime.now(UTC)
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
