"""When emails are due: the grid of delay windows, and daily digests in the user's time zone.

IMMEDIATE: time is cut into windows of `delay` (epoch-aligned, the same in every process). The
notifications created in window `k` come due (reach `delay` unread) during window `k + 1`; their
email goes when that window ends, at `(k + 2) * delay`, listing those still unread then. So every
notification listed was unread for at least the delay, at most twice the delay, and a user gets
at most one email per window.

DAILY: the digest is due at `daily_hour:00` local time in the user's zone, computed with zoneinfo
for each date, so daylight-saving changes move it in UTC and it stays at the same wall-clock hour.
An hour that does not exist that day (clocks jump forward over it) is due at the first instant
after the jump; an hour that happens twice (clocks go back) is due at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)


def window_of(created_ms: int, delay_ms: int) -> int:
    """The index of the delay window a notification created at `created_ms` belongs to."""
    return created_ms // delay_ms


def window_range(window: int, delay_ms: int) -> tuple[int, int]:
    """[start, end) of creation times, in epoch ms, of the notifications of `window`."""
    return window * delay_ms, (window + 1) * delay_ms


def window_due_ms(window: int, delay_ms: int) -> int:
    """When the email of `window` is due: the end of the window in which they all come due."""
    return (window + 2) * delay_ms


def last_closed_window(now_ms: int, delay_ms: int) -> int:
    """The newest window whose email is due at `now_ms` (or before)."""
    return now_ms // delay_ms - 2


def daily_due(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """The instant (UTC) of the digest of local date `day` at `hour:00`."""
    wall = datetime.combine(day, time(hour))
    first = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # A skipped wall time (clocks jump forward over it) does not survive the round trip: it is
    # due at the jump, the first instant whose local time is past it, found to the minute
    # between the two readings of the wall time with the offsets before and after the jump.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    instant, last = min(first, other), max(first, other)
    while instant < last and instant.astimezone(zone).replace(tzinfo=None) < wall:
        instant += timedelta(minutes=1)
    return instant


def latest_daily_due(now: datetime, hour: int, zone: ZoneInfo) -> datetime:
    """The most recent digest instant at or before `now`."""
    today = now.astimezone(zone).date()
    for day in (today + DAY, today, today - DAY, today - 2 * DAY):
        due = daily_due(day, hour, zone)
        if due <= now:
            return due
    return daily_due(today - 2 * DAY, hour, zone)


def next_daily_due(after: datetime, hour: int, zone: ZoneInfo) -> datetime:
    """The first digest instant strictly after `after`."""
    today = after.astimezone(zone).date()
    for day in (today - DAY, today, today + DAY, today + 2 * DAY):
        due = daily_due(day, hour, zone)
        if due > after:
            return due
    return daily_due(today + 2 * DAY, hour, zone)


def local_date_of(due: datetime, zone: ZoneInfo) -> date:
    return due.astimezone(zone).date()
