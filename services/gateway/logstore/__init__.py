"""The gateway's log-store path: Moodle's `mdl_logstore_standard_log` (read-only, PostgreSQL or
MariaDB/MySQL) and exports of it, published to `moodle.events`.

- `reader`: the SQL on Moodle's table (primary-key ranges, used events only);
- `window`: the id-gap arithmetic of the re-scan window (rows that commit out of id order);
- `checkpoints`: where a poll, backfill or import stands (our database);
- `intake`: one batch of rows -> parsed events published (ledger) and malformed rows dead-lettered;
- `dead_letters`: malformed rows as dead letters on `moodle.logstore.dlq`, and the rows a replay sends back;
- `poller`: the poll loop with its checkpoint; `backfill`: the history from a date; `export_files`: the
  history from a CSV or JSONL export.
"""
