"""The id-gap arithmetic of the poller's re-scan window.

Rows that commit out of id order
--------------------------------
Moodle writes log rows in buffers at the end of a request (or of a cron task), inside transactions: the
row with id N can commit after N+1 has been read. Keeping only "the last id seen" skips N forever.

The poller keeps, in the checkpoint's `state` (`WindowState`):

- `low`: every id <= low is settled (read, or given up as a rolled-back id);
- `high`: the newest id looked at (`SELECT MAX(id)`, committed rows only, at the start of the poll);
- `gaps`: the ids in (low, high] that were missing when looked at, as ranges `[first, last, since]`,
  `since` being the poller's (wall-clock) time the range was first seen missing;
- `seen`: the ids in (low, high] already handled (the used events among them).

A poll: (1) `newest = MAX(id)`; (2) find the ids in the window that are still missing: when there are
no open gaps and `COUNT(*)` of (high, newest] equals `newest - high` (the usual case) nothing has to be
listed, else the ids of (first open gap, newest] are listed (id only: primary-key range) and compared
with the open gaps and the new range (`missing_ranges`, `track_gaps`); (3) the used rows of (low, newest]
are read in id order, in batches, and those not in `seen` are published; (4) gaps older than
`poll_rescan_seconds` are closed (`expire`: an id that never commits belonged to a rolled-back
transaction) and `low` moves up to just below the oldest open gap (`settle`). So each poll re-reads only
the window since the oldest open gap, which is empty in the usual case and at most `poll_rescan_seconds`
of the site's used events otherwise.

Why ids and not `timecreated >= now - poll_rescan_seconds`: `timecreated` is the time the event was
triggered, not when its buffer was written; a completion logged early in a long cron run commits
minutes later with an old `timecreated` and would fall outside a time window. Ids are allocated at
insert time, so a missing id is exactly a row that may still commit. The bound that remains: a row
that commits more than `poll_rescan_seconds` after the poller first saw a higher id is skipped (raise
the setting for sites with very long transactions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

STATE_VERSION = 1

Gap = tuple[int, int, float]  # first id, last id (inclusive), poller time first seen missing


@dataclass
class WindowState:
    """The poller's checkpoint `state` (JSON); `position` of the checkpoint row is `high`."""

    low: int = 0
    high: int = 0
    gaps: list[Gap] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "low": self.low,
                "high": self.high,
                "gaps": [list(g) for g in self.gaps],
                "seen": sorted(self.seen),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str) -> WindowState:
        data = json.loads(raw or "{}")
        return cls(
            low=int(data.get("low", 0)),
            high=int(data.get("high", 0)),
            gaps=[(int(a), int(b), float(t)) for a, b, t in data.get("gaps", [])],
            seen={int(i) for i in data.get("seen", [])},
        )

    @property
    def open_ids(self) -> int:
        return sum(b - a + 1 for a, b, _t in self.gaps)

    def settle(self, upto: int) -> None:
        """Everything <= `upto` is read: move `low` there, or to just below the oldest open gap."""
        low = min(upto, self.gaps[0][0] - 1) if self.gaps else upto
        if low > self.low:
            self.low = low
            self.seen = {i for i in self.seen if i > low}

    def expire(self, now: float, seconds: float) -> list[Gap]:
        """Close gaps older than `seconds`: their transactions rolled back (or outlasted the window)."""
        closed = [g for g in self.gaps if g[2] <= now - seconds]
        self.gaps = [g for g in self.gaps if g[2] > now - seconds]
        return closed


def missing_ranges(present: Iterable[int], after: int, until: int) -> Iterator[tuple[int, int]]:
    """The ids of (after, until] not in `present` (ascending ids within that range), as ranges."""
    expected = after + 1
    for i in present:
        if i > expected:
            yield expected, i - 1
        expected = i + 1
    if expected <= until:
        yield expected, until


def track_gaps(
    old: Sequence[Gap], old_high: int, missing: Iterable[tuple[int, int]], now: float
) -> list[Gap]:
    """Gaps after a listing: missing ids that were open gaps keep their age, missing ids above `old_high`
    are new; missing ids outside both were settled before (closed gaps) and stay settled."""
    out: list[Gap] = []
    j = 0
    for a, b in missing:
        if a <= old_high:
            hi = min(b, old_high)
            while j < len(old) and old[j][1] < a:
                j += 1
            k = j
            while k < len(old) and old[k][0] <= hi:
                lo, up = max(a, old[k][0]), min(hi, old[k][1])
                if lo <= up:
                    out.append((lo, up, old[k][2]))
                k += 1
        if b > old_high:
            out.append((max(a, old_high + 1), b, now))
    return out
