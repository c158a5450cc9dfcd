"""Administrators' commands for the issuer, published on `credentials.commands`.

The backpack never writes an award: it asks the issuer (which saves the change with its event and
announces it) and waits for the broker's acknowledgement. When the broker does not acknowledge, nothing
was published and the administrator is told to try again: a command sent twice does no harm (revoking a
revoked credential keeps the first reason; a re-render that gives the same PDF stores no new version).
"""

from __future__ import annotations

import logging
import threading
import uuid

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ebackpack.bootstrap import Platform
from ebackpack.streaming.topics import CREDENTIAL_COMMANDS
from schemas import (
    CloudEvent,
    CourseRerenderRequested,
    CourseRerenderRequestedMessage,
    CredentialRevokeRequested,
    CredentialRevokeRequestedMessage,
)

log = logging.getLogger(__name__)
SOURCE = "urn:ebackpack:backpack"
PUBLISH_TIMEOUT = 5.0  # seconds the admin's request waits for the broker before "try again"


class CommandNotSent(RuntimeError):
    """The broker did not acknowledge the command: nothing was published."""


class AdminCommands:
    def __init__(self, platform: Platform, timeout: float = PUBLISH_TIMEOUT) -> None:
        self.platform, self.timeout = platform, timeout
        self.topic = platform.settings.topic(CREDENTIAL_COMMANDS)
        self._producer: KafkaProducer | None = None
        self._opening = threading.Lock()  # requests run in a thread pool: one producer for all

    def request_revocation(self, credential_id: str, code: str, reason: str, admin: str) -> None:
        data = CredentialRevokeRequested(
            credential_id=credential_id, verification_code=code, reason=reason, requested_by=admin
        )
        message = CredentialRevokeRequestedMessage.build(
            id=str(uuid.uuid4()), source=SOURCE, subject=credential_id, data=data
        )
        self._publish(credential_id, message)

    def request_rerender(self, course_id: int, admin: str) -> None:
        data = CourseRerenderRequested(course_id=course_id, requested_by=admin)
        message = CourseRerenderRequestedMessage.build(
            id=str(uuid.uuid4()), source=SOURCE, subject=f"course:{course_id}", data=data
        )
        self._publish(f"course:{course_id}", message)

    def _publish(self, key: str, message: CloudEvent) -> None:
        try:
            self._producer_now().send(self.topic, key=key.encode(), value=message.to_bytes()).get(
                timeout=self.timeout
            )
        except KafkaError as exc:
            log.warning("administrator's command %s not acknowledged: %s", message.type, exc)
            raise CommandNotSent(str(exc)) from exc

    def _producer_now(self) -> KafkaProducer:
        with self._opening:
            if self._producer is None:
                self._producer = self.platform.producer("ebackpack-admin", self.timeout)
            return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
