"""The service's one notion of "now", as stored.

BSON dates keep milliseconds, and times that updates change are stored as integer epoch
milliseconds (the embedded server stores a date given to `$set` as text): every write takes its
time from here, so what the API answers equals what the database holds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    """The current time, truncated to the millisecond that BSON keeps."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def millis(at: datetime) -> int:
    """`at` in epoch milliseconds."""
    return int(at.timestamp() * 1000)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
