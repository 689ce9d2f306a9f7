"""Resolvers of the viewer's email notification settings."""

from __future__ import annotations

from graphql_api.context import Info
from graphql_api.email.preferences import EmailFrequency
from schema.email_types import NotificationSettings


async def notification_settings(info: Info) -> NotificationSettings:
    found = await info.context.services.preferences.of(info.context.viewer)
    return NotificationSettings(record=found)


async def update_notification_settings(
    info: Info,
    email: EmailFrequency | None = None,
    daily_hour: int | None = None,
    time_zone: str | None = None,
) -> NotificationSettings:
    updated = await info.context.services.preferences.update(
        info.context.viewer, email=email, daily_hour=daily_hour, time_zone=time_zone
    )
    return NotificationSettings(record=updated)
