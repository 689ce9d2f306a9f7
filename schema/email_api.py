"""The email settings' root fields, composed into Query and Mutation by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import email
from schema.email_types import NotificationSettings
from schema.permissions import Authenticated, guarded


@strawberry.type
class EmailQuery:
    notification_settings: NotificationSettings = strawberry.field(
        resolver=email.notification_settings,
        description="The viewer's email notification settings.",
        **guarded(Authenticated),
    )


@strawberry.type
class EmailMutation:
    update_notification_settings: NotificationSettings = strawberry.mutation(
        resolver=email.update_notification_settings,
        description="Change the viewer's email settings; arguments left out keep their value. "
        "`dailyHour` is 0-23, `timeZone` an IANA name (BAD_USER_INPUT otherwise).",
        **guarded(Authenticated),
    )
