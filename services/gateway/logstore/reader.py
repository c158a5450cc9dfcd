"""Reading Moodle's `{prefix}logstore_standard_log`: plain SQL that PostgreSQL and MariaDB/MySQL both run,
on a connection that can only read."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, text

from schemas.moodle import LOG_COLUMNS
from services.gateway.events import USED

TABLE = "logstore_standard_log"
COLUMNS = LOG_COLUMNS  # in the table's order
BATCH = 2000  # rows per read and per publish
ID_CHUNK = 50_000  # ids per listing query (gap detection)

Row = dict[str, Any]


def moodle_engine(url: str) -> Engine:
    """An engine for the Moodle database that can only read, and sees each commit at once.

    READ COMMITTED: on MySQL/MariaDB the default REPEATABLE READ would pin a snapshot for as long as a
    transaction lasts. Read-only sessions as a second fence (the database user should be read-only too).
    """
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args["options"] = "-c default_transaction_read_only=on"
    elif url.startswith(("mysql", "mariadb")):
        connect_args["init_command"] = "SET SESSION TRANSACTION READ ONLY"
    return create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED", connect_args=connect_args)


class LogStoreReader:
    """Plain SQL on `{prefix}logstore_standard_log` that PostgreSQL and MariaDB/MySQL both run.

    Every read is a primary-key range (`id > :after AND id <= :until ORDER BY id LIMIT n`), filtered to
    the used event names in SQL; one short transaction per query.
    """

    def __init__(self, engine: Engine, prefix: str = "mdl_", events: Sequence[str] = USED) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]*", prefix):
            raise ValueError(f"not a Moodle table prefix: {prefix!r}")
        self.engine = engine
        self.table = f"{prefix}{TABLE}"
        self.events = list(events)
        self._columns = ", ".join(COLUMNS)

    def _scalar(self, sql: str, **params: Any) -> int | None:
        with self.engine.connect() as connection:
            value = connection.execute(text(sql), params).scalar()
        return None if value is None else int(value)

    def newest_id(self) -> int:
        """The highest committed id (0 for an empty table)."""
        return self._scalar(f"SELECT MAX(id) FROM {self.table}") or 0

    def count_ids(self, after: int, until: int) -> int:
        """Committed rows with `after < id <= until`, any event (primary-key range count)."""
        if until <= after:
            return 0
        sql = f"SELECT COUNT(*) FROM {self.table} WHERE id > :after AND id <= :until"
        return self._scalar(sql, after=after, until=until) or 0

    def ids(self, after: int, until: int, limit: int = ID_CHUNK) -> list[int]:
        """Ids of committed rows with `after < id <= until`, ascending, at most `limit`, any event."""
        query = text(f"SELECT id FROM {self.table} WHERE id > :after AND id <= :until ORDER BY id LIMIT :n")
        with self.engine.connect() as connection:
            found = connection.execute(query, {"after": after, "until": until, "n": limit}).scalars()
            return [int(i) for i in found]

    def all_ids(self, after: int, until: int) -> Iterator[int]:
        """Every id of `after < id <= until`, listed `ID_CHUNK` at a time."""
        while True:
            chunk = self.ids(after, until, ID_CHUNK)
            yield from chunk
            if len(chunk) < ID_CHUNK:
                return
            after = chunk[-1]

    def rows(
        self, after: int, until: int | None = None, limit: int = BATCH, since: int | None = None
    ) -> list[Row]:
        """The used rows with `after < id <= until` (and `timecreated >= since`), in id order."""
        where = ["id > :after", "eventname IN :names"]
        params: dict[str, Any] = {"after": after, "names": self.events, "n": limit}
        if until is not None:
            where.append("id <= :until")
            params["until"] = until
        if since is not None:
            where.append("timecreated >= :since")
            params["since"] = since
        query = text(
            f"SELECT {self._columns} FROM {self.table} WHERE {' AND '.join(where)} ORDER BY id LIMIT :n"
        ).bindparams(bindparam("names", expanding=True))
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(query, params).mappings()]

    def row(self, row_id: int) -> Row | None:
        """The row with this id as the table holds it now, any event (None: not there, or purged)."""
        query = text(f"SELECT {self._columns} FROM {self.table} WHERE id = :id")
        with self.engine.connect() as connection:
            found = connection.execute(query, {"id": row_id}).mappings().first()
        return None if found is None else dict(found)

    def window(self, low: int, until: int, limit: int = BATCH) -> Iterator[list[Row]]:
        """The re-scan query: every used row above the low-water mark, in batches."""
        after = low
        while True:
            batch = self.rows(after, until, limit)
            if batch:
                yield batch
            if len(batch) < limit:
                return
            after = int(batch[-1]["id"])

    def first_id_since(self, since: int) -> int | None:
        """The lowest id of a row triggered at or after `since` (unix time; the timecreated index)."""
        return self._scalar(f"SELECT MIN(id) FROM {self.table} WHERE timecreated >= :since", since=since)
