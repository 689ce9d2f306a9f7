"""A user's email preferences: `notificationSettings` and `updateNotificationSettings` (SPEC §15).

Stored on the user document as `notification_settings {email, daily_hour, time_zone}`; a user
without it gets the defaults (IMMEDIATE emails, a DAILY digest at 8:00, UTC). `dailyHour` is
kept when the frequency changes, so switching back to DAILY restores the hour chosen before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pymongo import ReturnDocument

from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput, NotFound

DEFAULT_DAILY_HOUR = 8
DEFAULT_TIME_ZONE = "UTC"
MAX_TIME_ZONE_LENGTH = 64


class EmailFrequency(enum.StrEnum):
    IMMEDIATE = "IMMEDIATE"
    DAILY = "DAILY"
    OFF = "OFF"


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    email: EmailFrequency
    daily_hour: int
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @classmethod
    def from_user_doc(cls, doc: Document) -> NotificationSettings:
        stored = doc.get("notification_settings") or {}
        try:
            email = EmailFrequency(stored.get("email", EmailFrequency.IMMEDIATE))
        except ValueError:
            email = EmailFrequency.IMMEDIATE
        hour = stored.get("daily_hour")
        zone = stored.get("time_zone")
        return cls(
            email=email,
            daily_hour=hour if isinstance(hour, int) and 0 <= hour <= 23 else DEFAULT_DAILY_HOUR,
            time_zone=zone if isinstance(zone, str) and _is_zone(zone) else DEFAULT_TIME_ZONE,
        )

    def to_doc(self) -> Document:
        return {
            "email": self.email.value,
            "daily_hour": self.daily_hour,
            "time_zone": self.time_zone,
        }


def _is_zone(name: str) -> bool:
    if not name or len(name) > MAX_TIME_ZONE_LENGTH or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def clean_time_zone(name: str) -> str:
    """An IANA time zone name ("Europe/Paris"), or BAD_USER_INPUT."""
    if not _is_zone(name.strip()):
        raise BadUserInput(
            "timeZone must be an IANA time zone name such as 'Europe/Paris' or 'UTC'",
            field="timeZone",
        )
    return name.strip()


def clean_daily_hour(hour: int) -> int:
    if not 0 <= hour <= 23:
        raise BadUserInput("dailyHour must be an hour from 0 to 23", field="dailyHour")
    return hour


class Preferences:
    """Reading and changing the viewer's notification settings."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def of(self, viewer: User) -> NotificationSettings:
        doc = await self.db.users.find_one({"_id": viewer.id}, {"notification_settings": 1})
        if doc is None:
            raise NotFound("user not found")
        return NotificationSettings.from_user_doc(doc)

    async def update(
        self,
        viewer: User,
        *,
        email: EmailFrequency | None = None,
        daily_hour: int | None = None,
        time_zone: str | None = None,
    ) -> NotificationSettings:
        """Change what is given, keep the rest; everything is checked before anything is
        written."""
        current = await self.of(viewer)
        updated = NotificationSettings(
            email=email if email is not None else current.email,
            daily_hour=clean_daily_hour(daily_hour)
            if daily_hour is not None
            else current.daily_hour,
            time_zone=clean_time_zone(time_zone) if time_zone is not None else current.time_zone,
        )
        await self.store(viewer.id, updated)
        return updated

    async def store(self, user_id: str, settings: NotificationSettings) -> bool:
        """Write `settings`; answers whether anything changed."""
        result = await self.db.users.update_one(
            {"_id": user_id}, {"$set": {"notification_settings": settings.to_doc()}}
        )
        return result.modified_count > 0

    async def turn_off(self, user_id: str) -> NotificationSettings | None:
        """Set the email frequency to OFF (one-click unsubscribe); None for an unknown user."""
        doc = await self.db.users.find_one_and_update(
            {"_id": user_id},
            {"$set": {"notification_settings.email": EmailFrequency.OFF.value}},
            return_document=ReturnDocument.AFTER,
        )
        return NotificationSettings.from_user_doc(doc) if doc else None
