"""Erasing what a service stored in S3 and recorded in SQL, for the right to erasure (docs/privacy.md).

Objects first, rows after: a crash in between leaves rows whose objects are gone, and the redelivered
event finds the rows and deletes them (an S3 delete of a missing key succeeds). An object stored whose
row a crash never wrote is found by listing the folders the owner stores under. Erasing again finds
nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Delete, Select
from sqlalchemy.orm import Session, sessionmaker

from ebackpack.adapters.storage import ObjectStore


def erase_stored(
    sessions: sessionmaker[Session],
    objects: ObjectStore,
    *,
    keys: Select[Any],  # of object keys (None: nothing stored)
    folders: Iterable[str],
    rows: Delete,
) -> int:
    """Deletes the objects `keys` names and those under `folders`, then `rows`; returns how many objects."""
    with sessions() as session:
        found: set[str] = {key for key in session.scalars(keys) if key}
    for folder in folders:
        found.update(objects.keys(folder))
    for key in sorted(found):
        objects.delete(key)
    with sessions.begin() as session:
        session.execute(rows)
    return len(found)
