"""The notifier's service: credential events, rendered PDFs and expiry dates in, e-mails and Moodle
messages out, each exactly once as far as the channels allow (docs/notifier.md says where they do not).

`NotifierService` is the facade the agent, the CLI and the tests call: it builds the handlers' context
once (channels, site, timings; the code secret from the `Platform`) and gives each call a unit of work
of its own on SQL. The use cases are in handlers.py, the rules they apply in delivery.py.

One `notifications` row per (event id, channel) is the idempotency record and the retry schedule:

    accept / scan_expiring: the row is created `pending` (a redelivered event finds it: nothing new)
    deliver:  pending|failed (due) --claim--> sending   committed BEFORE the channel is called
              sending --the channel accepted--> sent     committed right after the acceptance
              sending --error--> failed (next_attempt_at = now + backoff) ... --> gave-up --> dead
              anything the learner is not to get --> skipped (turned off, no address, revoked meanwhile,
                  a credential awarded from the backfill lane unless `notify_backfill`)
              what no retry can send (an invalid address) --> gave-up at once, before any attempt

The claim is a compare-and-set (UPDATE ... WHERE state = <what was read> AND attempts = <what was read>),
so two workers (or the consumer and the retry timer) never send the same row at once. A row left in
`sending` longer than `stale_sending` means its worker died between the claim and the record: it is sent
again, because the crash most likely came before or during the send (the channel did not deliver); if
it came in the instant between the channel's acceptance and the record, the learner gets the message
twice, with the same Message-ID.

An issued certificate's message waits for its PDF: the notifier learns of it from the renderer's
`certificates.rendered` events (`rendered`), recorded in its own table `notifier_pdfs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.preferences import active_channels
from ebackpack.bootstrap import Platform, build
from ebackpack.config import Settings
from ebackpack.domain.rules import RuleBook
from ebackpack.streaming.topics import CREDENTIALS

from . import handlers
from .channels import EmailSender, MoodleChannel, MoodleSender, SmtpChannel
from .delivery import Key
from .domain import Notice, Site
from .handlers import EXPIRY_SCAN_SOURCE, Context, Outcome, Senders
from .tuning import Tuning
from .unit_of_work import NotifierUnitOfWork, SqlUnitOfWork

__all__ = ["EXPIRY_SCAN_SOURCE", "Key", "NotifierService", "Outcome", "Tuning"]


def senders_for(
    settings: Settings, timeout: float, email: EmailSender | None = None, moodle: MoodleSender | None = None
) -> Senders:
    """A sender for each channel the settings configure (those given, or the real ones)."""
    active = active_channels(settings)
    return Senders(
        email=(email or SmtpChannel.from_settings(settings, timeout)) if "email" in active else None,
        moodle=(moodle or MoodleChannel.from_settings(settings, timeout)) if "moodle" in active else None,
    )


class NotifierService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules: RuleBook,
        settings: Settings,
        tuning: Tuning | None = None,
        *,
        email: EmailSender | None = None,
        moodle: MoodleSender | None = None,
        clock: Callable[[], datetime] | None = None,
        platform: Platform | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.tuning = tuning or Tuning()
        platform = platform or build(settings)  # the code secret, made on first use (an e-mail's link)
        self.context = Context(
            senders=senders_for(settings, self.tuning.send_timeout, email, moodle),
            site=Site(
                issuer_name=rules.issuer.name,
                issuer_email=rules.issuer.email,
                public_url=settings.public_url,
                moodle_url=settings.moodle_url,
            ),
            rules=rules,
            mail_from=settings.mail_from,
            consumer=settings.notify_group,
            credentials_topic=settings.topic(CREDENTIALS),
            reminder_days=settings.expiry_reminder_days,
            code_secret=lambda: platform.code_secret,
            tuning=self.tuning,
            clock=clock or (lambda: datetime.now(UTC)),
            notify_backfill=settings.notify_backfill,
        )

    @classmethod
    def from_platform(cls, platform: Platform, tuning: Tuning | None = None) -> NotifierService:
        return cls(platform.sessions, platform.rules, platform.settings, tuning, platform=platform)

    def unit_of_work(self) -> NotifierUnitOfWork:
        """One per call: the agent's consumer and timers call from threads of their own."""
        return SqlUnitOfWork(self.sessions)

    @property
    def channels(self) -> list[str]:
        return self.context.senders.channels

    def accept(self, raw: bytes) -> list[Key]:
        """A `credentials` message: its notifications recorded (once), and those due now returned.

        Raises InvalidMessage for poison; TransientError when another worker recorded it at the same time."""
        return handlers.accept_event(raw, self.unit_of_work(), self.context)

    def record(self, notices: Iterable[Notice]) -> list[Key]:
        return handlers.record_notices(notices, self.unit_of_work(), self.context)

    def rendered(self, raw: bytes) -> list[Key]:
        """A `certificates.rendered` message: the PDF recorded, the messages that waited for it returned."""
        return handlers.record_rendered(raw, self.unit_of_work(), self.context)

    def due(self, limit: int = 200) -> list[Key]:
        return handlers.due(self.unit_of_work(), self.context, limit)

    def scan_expiring(self, limit: int = 500) -> list[Key]:
        return handlers.scan_expiring(self.unit_of_work(), self.context, limit)

    def expiring(self, limit: int = 500) -> list[Notice]:
        return handlers.expiring(self.unit_of_work(), self.context, limit)

    def deliver(self, key: Key) -> Outcome:
        return handlers.deliver(key, self.unit_of_work(), self.context)

    def mark_dead(self, key: Key) -> None:
        """The dead letter was acknowledged by the broker."""
        handlers.mark_dead(key, self.unit_of_work(), self.context)

    def requeue(self, key: Key) -> bool:
        """An operator's second chance for a dead notification (after fixing the cause)."""
        return handlers.requeue(key, self.unit_of_work(), self.context)
