"""When emails are due (graphql_api/email/schedule.py): the delay windows, and daily digests at
the user's hour in its time zone on both sides of daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from graphql_api.email import schedule

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_notification_is_emailed_between_one_and_two_delays_after_it_was_created():
    delay = 600_000
    for created in (0, 1, 599_999, 600_000, 1_234_567_890):
        window = schedule.window_of(created, delay)
        start, end = schedule.window_range(window, delay)
        due = schedule.window_due_ms(window, delay)
        assert start <= created < end
        assert delay <= due - created <= 2 * delay
        assert schedule.last_closed_window(due, delay) == window
        assert schedule.last_closed_window(due - 1, delay) == window - 1


def test_the_daily_digest_keeps_its_wall_clock_hour_across_the_spring_change_in_paris():
    # 30 March 2025: clocks jump from 02:00 to 03:00 (UTC+1 to UTC+2).
    assert schedule.daily_due(date(2025, 3, 29), 8, PARIS) == utc(2025, 3, 29, 7)
    assert schedule.daily_due(date(2025, 3, 30), 8, PARIS) == utc(2025, 3, 30, 6)
    assert schedule.daily_due(date(2025, 3, 31), 8, PARIS) == utc(2025, 3, 31, 6)
    # The day is 23 hours long: consecutive digests are 23 hours apart.
    assert schedule.daily_due(date(2025, 3, 30), 8, PARIS) - schedule.daily_due(
        date(2025, 3, 29), 8, PARIS
    ) == timedelta(hours=23)


def test_the_daily_digest_keeps_its_wall_clock_hour_across_the_autumn_change_in_paris():
    # 26 October 2025: clocks go back from 03:00 to 02:00 (UTC+2 to UTC+1): a 25-hour day.
    assert schedule.daily_due(date(2025, 10, 25), 8, PARIS) == utc(2025, 10, 25, 6)
    assert schedule.daily_due(date(2025, 10, 26), 8, PARIS) == utc(2025, 10, 26, 7)
    assert schedule.daily_due(date(2025, 10, 26), 8, PARIS) - schedule.daily_due(
        date(2025, 10, 25), 8, PARIS
    ) == timedelta(hours=25)


def test_a_digest_hour_skipped_by_the_change_is_due_when_clocks_land_after_it():
    # 02:00 does not exist on 30 March 2025 in Paris: due at the jump (03:00 local, 01:00 UTC).
    due = schedule.daily_due(date(2025, 3, 30), 2, PARIS)
    assert due == utc(2025, 3, 30, 1)
    assert due.astimezone(PARIS).hour == 3
    # New York, 9 March 2025: 02:00 is skipped too.
    assert schedule.daily_due(date(2025, 3, 9), 2, NEW_YORK) == utc(2025, 3, 9, 7)


def test_a_digest_hour_that_happens_twice_is_due_once_at_its_first_occurrence():
    # 2 November 2025, New York: 01:00 happens at 05:00 UTC (EDT) and again at 06:00 UTC (EST).
    assert schedule.daily_due(date(2025, 11, 2), 1, NEW_YORK) == utc(2025, 11, 2, 5)
    assert schedule.daily_due(date(2025, 10, 26), 2, PARIS) == utc(2025, 10, 26, 0)


def test_latest_and_next_digest_on_both_sides_of_a_change():
    before = utc(2025, 3, 29, 12)  # Saturday noon UTC, before the Paris change
    after = utc(2025, 3, 30, 12)  # Sunday noon UTC, after it
    assert schedule.latest_daily_due(before, 8, PARIS) == utc(2025, 3, 29, 7)
    assert schedule.next_daily_due(before, 8, PARIS) == utc(2025, 3, 30, 6)
    assert schedule.latest_daily_due(after, 8, PARIS) == utc(2025, 3, 30, 6)
    assert schedule.next_daily_due(after, 8, PARIS) == utc(2025, 3, 31, 6)
    # Exactly at the instant: that digest is the latest, the next is the following day's.
    at = utc(2025, 3, 30, 6)
    assert schedule.latest_daily_due(at, 8, PARIS) == at
    assert schedule.next_daily_due(at, 8, PARIS) == utc(2025, 3, 31, 6)
