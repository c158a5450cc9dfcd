"""The composition root: what every entry point (workers, web apps, CLI commands) is built from.

`build(settings)` returns a `Platform` whose parts are made on first use and then shared: a command that
needs only the award rules never opens a database, and a worker that needs the database opens one
engine. Entry points take their dependencies from here instead of wiring them again; tests pass their
own `Settings` (or a `Platform` with parts replaced) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from kafka import KafkaProducer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.credential_store import CredentialStore
from ebackpack.adapters.kafka import LINGER_MS, bounded_producer
from ebackpack.adapters.keystore import code_secret_for, keyring_for
from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.storage import ObjectStore
from ebackpack.config import Settings, get_settings
from ebackpack.domain.credentials.keys import KeyRing
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import RuleBook, load_rules
from ebackpack.streaming.topics import create_topics


@dataclass
class Platform:
    """The shared parts of one process, each built once, when first asked for."""

    settings: Settings
    _overrides: dict[str, object] = field(default_factory=dict, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.db_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def rules(self) -> RuleBook:
        return load_rules(self.settings.rules_file)

    @cached_property
    def keys(self) -> KeyRing:
        return keyring_for(self.settings)

    @cached_property
    def code_secret(self) -> bytes:
        return code_secret_for(self.settings)

    @cached_property
    def objects(self) -> ObjectStore:
        return ObjectStore(self.settings)

    @cached_property
    def urls(self) -> PublicUrls:
        return PublicUrls(self.settings.public_url)

    def credential_store(self, session: Session) -> CredentialStore:
        """Credential state in SQL, read and written within the caller's session."""
        return CredentialStore(
            session, self.rules, self.settings.site_id, self.urls, self.code_secret, self.settings.moodle_url
        )

    def producer(
        self,
        client_id: str,
        timeout: float,
        *,
        connect_timeout: float | None = None,
        linger_ms: int = LINGER_MS,
    ) -> KafkaProducer:
        """A blocking producer whose every wait is bounded by `timeout` seconds (see adapters/kafka.py)."""
        return bounded_producer(
            self.settings,
            client_id=client_id,
            timeout=timeout,
            connect_timeout=connect_timeout,
            linger_ms=linger_ms,
        )


def prepare(settings: Settings) -> sessionmaker[Session]:
    """Database schema, bucket and topics: everything that must exist before workers start (idempotent).
    Returns a session factory on the migrated database."""
    migrate(settings.db_url)
    ObjectStore(settings).ensure_bucket()
    create_topics(settings)
    return session_factory(make_engine(settings.db_url))


def build(settings: Settings | None = None) -> Platform:
    """The platform for these settings (default: the environment's, checked for production secrets)."""
    return Platform(settings or get_settings())
