"""Learners' notification choices in SQL (which kinds of message on which channel), and the channels
this installation sends on. Read by the notifier before each message, written by the backpack's
preferences page and its one-click unsubscribe."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ebackpack.adapters.persistence.tables import NotificationPreferenceRow
from ebackpack.config import Settings
from ebackpack.domain.notifications import CHANNELS, KINDS, Channel


def active_channels(settings: Settings) -> list[Channel]:
    """The channels this installation sends on: e-mail with an SMTP server, Moodle with a token."""
    channels: list[Channel] = []
    if settings.smtp_host:
        channels.append("email")
    if settings.notify_moodle_messages and settings.moodle_ws_token is not None:
        channels.append("moodle")
    return channels


class PreferenceStore:
    """The learner's choices: which kinds of message on which channel. No row = on."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def choices(self, learner_id: int) -> dict[tuple[str, str], bool]:
        choices: dict[tuple[str, str], bool] = {(k, c): True for k in KINDS for c in CHANNELS}
        rows = self.session.scalars(
            select(NotificationPreferenceRow).where(NotificationPreferenceRow.learner_id == learner_id)
        )
        for row in rows:
            choices[(row.kind, row.channel)] = row.enabled
        return choices

    def enabled(self, learner_id: int, kind: str, channel: str) -> bool:
        row = self.session.get(NotificationPreferenceRow, (learner_id, kind, channel))
        return True if row is None else row.enabled

    def set(self, learner_id: int, kind: str, channel: str, enabled: bool) -> None:
        if kind not in KINDS or channel not in CHANNELS:
            raise ValueError(f"no such kind of message or channel: {kind}/{channel}")
        self.session.merge(
            NotificationPreferenceRow(
                learner_id=learner_id,
                kind=kind,
                channel=channel,
                enabled=enabled,
                updated_at=datetime.now(UTC),
            )
        )
