"""What every consumer writes to its dead-letter topic (`<topic>.dlq`) instead of dropping a message."""

from __future__ import annotations

import base64
from typing import ClassVar

from pydantic import BaseModel, Field

from .envelope import CloudEvent


class DeadLetter(BaseModel):
    reason: str = Field(description="Readable: what is wrong with the message.")
    error_type: str = Field(description="Exception class, e.g. `ValidationError`.")
    consumer: str = Field(description="The consumer group that gave up on the message.")
    topic: str
    partition: int
    offset: int
    key_b64: str | None = Field(description="Original key bytes, base64.")
    value_b64: str = Field(description="Original value bytes, base64.")

    @property
    def value(self) -> bytes:
        return base64.b64decode(self.value_b64)


class DeadLetterMessage(CloudEvent):
    TYPE: ClassVar[str] = "pl.ebackpack.dead_letter.v1"
    data: DeadLetter
