"""Event models: the public API of e-Backpack's topics. Evolution is additive only."""

from .certificates import (
    CertificateRendered,
    CertificateRenderedMessage,
    CertificateRenderRequest,
    CertificateRenderRequestMessage,
)
from .credentials import (
    Achievement,
    CredentialExpired,
    CredentialExpiredMessage,
    CredentialIssued,
    CredentialIssuedMessage,
    CredentialRevoked,
    CredentialRevokedMessage,
)
from .deadletter import DeadLetter, DeadLetterMessage
from .envelope import CloudEvent, deterministic_id
from .moodle import MoodleEvent, MoodleEventMessage, MoodleLogRow

# Every published message type, by the name of its exported JSON Schema file.
PUBLISHED: dict[str, type[CloudEvent]] = {
    "moodle.event.v1": MoodleEventMessage,
    "credential.issued.v1": CredentialIssuedMessage,
    "credential.revoked.v1": CredentialRevokedMessage,
    "credential.expired.v1": CredentialExpiredMessage,
    "certificate.render_requested.v1": CertificateRenderRequestMessage,
    "certificate.rendered.v1": CertificateRenderedMessage,
    "dead_letter.v1": DeadLetterMessage,
}

__all__ = [
    "PUBLISHED", "Achievement", "CertificateRendered", "CertificateRenderedMessage",
    "CertificateRenderRequest", "CertificateRenderRequestMessage", "CloudEvent", "CredentialIssued",
    "CredentialIssuedMessage", "CredentialExpired", "CredentialExpiredMessage", "CredentialRevoked",
    "CredentialRevokedMessage", "DeadLetter", "DeadLetterMessage", "MoodleEvent", "MoodleEventMessage",
    "MoodleLogRow", "deterministic_id",
]
