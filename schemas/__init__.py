"""Event models: the public API of e-Backpack's topics. Evolution is additive only."""

from .attestations import (
    AttestationImported,
    AttestationImportedMessage,
    AttestationRejected,
    AttestationRejectedMessage,
    AttestationUploaded,
    AttestationUploadedMessage,
)
from .certificates import (
    CertificateRendered,
    CertificateRenderedMessage,
    CertificateRenderRequest,
    CertificateRenderRequestMessage,
)
from .commands import (
    AdminCommand,
    CourseRerenderRequested,
    CourseRerenderRequestedMessage,
    CredentialRevokeRequested,
    CredentialRevokeRequestedMessage,
)
from .credentials import (
    Achievement,
    CredentialErased,
    CredentialErasedMessage,
    CredentialExpired,
    CredentialExpiredMessage,
    CredentialIssued,
    CredentialIssuedMessage,
    CredentialRevoked,
    CredentialRevokedMessage,
)
from .deadletter import DeadLetter, DeadLetterMessage
from .envelope import CloudEvent, deterministic_id, keyed_id
from .learners import LearnerErased, LearnerErasedMessage
from .moodle import MoodleCourseMessage, MoodleEvent, MoodleEventMessage, MoodleLogRow, MoodleUserMessage

# Every published message type, by the name of its exported JSON Schema file.
PUBLISHED: dict[str, type[CloudEvent]] = {
    "moodle.event.v1": MoodleEventMessage,
    "moodle.user.v1": MoodleUserMessage,
    "moodle.course.v1": MoodleCourseMessage,
    "credential.issued.v1": CredentialIssuedMessage,
    "credential.revoked.v1": CredentialRevokedMessage,
    "credential.expired.v1": CredentialExpiredMessage,
    "credential.erased.v1": CredentialErasedMessage,
    "learner.erased.v1": LearnerErasedMessage,
    "certificate.render_requested.v1": CertificateRenderRequestMessage,
    "certificate.rendered.v1": CertificateRenderedMessage,
    "dead_letter.v1": DeadLetterMessage,
    "attestation.uploaded.v1": AttestationUploadedMessage,
    "attestation.imported.v1": AttestationImportedMessage,
    "attestation.rejected.v1": AttestationRejectedMessage,
    "credential.revoke.requested.v1": CredentialRevokeRequestedMessage,
    "course.rerender.requested.v1": CourseRerenderRequestedMessage,
}

__all__ = [
    "PUBLISHED",
    "AdminCommand",
    "Achievement",
    "AttestationImported",
    "AttestationImportedMessage",
    "AttestationRejected",
    "AttestationRejectedMessage",
    "AttestationUploaded",
    "AttestationUploadedMessage",
    "CertificateRendered",
    "CertificateRenderedMessage",
    "CertificateRenderRequest",
    "CertificateRenderRequestMessage",
    "CloudEvent",
    "CourseRerenderRequested",
    "CourseRerenderRequestedMessage",
    "CredentialErased",
    "CredentialErasedMessage",
    "CredentialIssued",
    "CredentialIssuedMessage",
    "CredentialExpired",
    "CredentialExpiredMessage",
    "CredentialRevoked",
    "CredentialRevokedMessage",
    "CredentialRevokeRequested",
    "CredentialRevokeRequestedMessage",
    "DeadLetter",
    "DeadLetterMessage",
    "LearnerErased",
    "LearnerErasedMessage",
    "MoodleCourseMessage",
    "MoodleEvent",
    "MoodleEventMessage",
    "MoodleLogRow",
    "MoodleUserMessage",
    "deterministic_id",
    "keyed_id",
]
