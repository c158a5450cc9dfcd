"""The database schema, one module per owning service. Correctness-critical state lives here, not in
Kafka or faust tables.

Each table has one writer, the service that owns it (issuer.py, renderer.py, notifier.py, gateway.py,
backpack.py; attestations.py: the backpack records uploads, the importer their verdicts). Others only
read: the backpack shows awards and PDFs through the read models in the core
(adapters/credential_store.py, adapters/certificate_reads.py), the notifier reads awards and profiles
to word its messages. What a service must act on reaches it as an event on a topic, never by polling
another's table.
"""

from .attestations import AttestationRow
from .backpack import ShareRow, VcapiCredentialRow, WalletCopyRow, WalletOfferRow, WebSessionRow
from .base import Base
from .gateway import GatewayCheckpointRow, GatewayEventRow
from .issuer import AwardRow, Course, Learner, OutboxRow, ParkedMessageRow, SignedCredentialRow
from .notifier import NotificationPreferenceRow, NotificationRow, NotifierPdfRow
from .renderer import CertificateRow

__all__ = [
    "Base",
    "Learner",
    "Course",
    "AwardRow",
    "SignedCredentialRow",
    "OutboxRow",
    "ParkedMessageRow",
    "CertificateRow",
    "AttestationRow",
    "ShareRow",
    "WebSessionRow",
    "WalletOfferRow",
    "WalletCopyRow",
    "VcapiCredentialRow",
    "GatewayEventRow",
    "GatewayCheckpointRow",
    "NotificationRow",
    "NotificationPreferenceRow",
    "NotifierPdfRow",
]
