"""`EmailFrequency` and `NotificationSettings` as the contract shapes them (SPEC §18)."""

from __future__ import annotations

import strawberry

from graphql_api.email import preferences

EmailFrequency = strawberry.enum(
    preferences.EmailFrequency,
    name="EmailFrequency",
    description="IMMEDIATE: an email for what is still unread after the delay; DAILY: one "
    "digest a day at `dailyHour` in `timeZone`; OFF: no email.",
)


@strawberry.type(description="How the viewer is told of new messages by email.")
class NotificationSettings:
    record: strawberry.Private[preferences.NotificationSettings]

    @strawberry.field
    def email(self) -> EmailFrequency:
        return self.record.email

    @strawberry.field(description="The hour (0-23) of the DAILY digest; null unless DAILY.")
    def daily_hour(self) -> int | None:
        if self.record.email is not preferences.EmailFrequency.DAILY:
            return None
        return self.record.daily_hour

    @strawberry.field(description="An IANA time zone name, such as Europe/Paris.")
    def time_zone(self) -> str:
        return self.record.time_zone
