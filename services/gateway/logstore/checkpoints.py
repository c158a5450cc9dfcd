"""Where a poll, a backfill or an import stands (`gateway_checkpoints`, our database): saved only after
the broker acknowledged what came before it, so a crash re-publishes at worst and loses nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.persistence.tables import GatewayCheckpointRow


class Checkpoints:
    """Named checkpoints: a position (a Moodle log id) and a JSON state."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def load(self, name: str) -> tuple[int, str] | None:
        with self.sessions() as session:
            row = session.get(GatewayCheckpointRow, name)
            return None if row is None else (row.position, row.state)

    def save(self, name: str, position: int, state: str) -> None:
        with self.sessions.begin() as session:
            session.merge(
                GatewayCheckpointRow(name=name, position=position, state=state, updated_at=datetime.now(UTC))
            )
