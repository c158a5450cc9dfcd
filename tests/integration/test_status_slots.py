"""Status-list slots: every credential gets its own (list, index), also when preferred slots collide."""

from __future__ import annotations

import uuid

import pytest

from ebackpack.adapters.credential_store import PROBE, CredentialStore
from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.config import SAMPLE_DIR
from ebackpack.domain.credentials import statuslist
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import load_rules

pytestmark = pytest.mark.integration
SPAN = statuslist.LIST_SIZE - PROBE


def ids_preferring(slot: int, count: int) -> list[str]:
    """Credential ids whose preferred slot is `slot`."""
    return [str(uuid.UUID(int=slot + n * SPAN)) for n in range(count)]


def test_colliding_credentials_get_distinct_slots_in_one_batch(database_url: str) -> None:
    migrate(database_url)
    with session_factory(make_engine(database_url))() as session:
        store = CredentialStore(
            session,
            load_rules(SAMPLE_DIR / "rules.toml"),
            "site",
            PublicUrls("http://127.0.0.1:1"),
            b"code secret",
        )
        crowded = ids_preferring(1000, PROBE + 3)  # more than one probe window can hold
        entries = store.allocate_status_entries(crowded + ids_preferring(5, 2))
    assert len(set(entries.values())) == len(entries) == PROBE + 5
    assert entries[crowded[0]] == (1, 1000)
    assert {lst for lst, _i in entries.values()} == {1, 2}  # the window overflowed into list 2
    assert all(0 <= i < statuslist.LIST_SIZE for _l, i in entries.values())
