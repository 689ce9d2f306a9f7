"""Resolvers of notifications: the list and marking them read."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.pagination import Page, notification_cursor
from graphql_api.policy import filter_readable
from schema.notification_types import Notification, NotificationConnection
from schema.pagination import connection


async def notifications(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    unread_only: bool | None = False,
) -> NotificationConnection:
    viewer = info.context.viewer
    # The page holds only notifications of conversations the viewer may read (the policy's
    # filter is in the query), so its cursors and hasNextPage tell nothing of the others.
    items, has_next = await info.context.services.notifications.page(
        viewer, first, after, bool(unread_only)
    )
    # Their conversations are loaded for the nodes anyway: one whose access ended since the
    # query (a race) is left out rather than failing the page.
    conversations = await info.context.loaders.conversations.load_many(
        [n.conversation_id for n in items]
    )
    readable = filter_readable(viewer, conversations)
    shown = Page(
        items=[n for n in items if n.conversation_id in readable],
        has_next_page=has_next,
        has_previous_page=after is not None,
    )
    return connection(
        shown,
        cursor=lambda n: notification_cursor(n.read_ms is None, n.id),
        node=lambda n: Notification(record=n),
    )


async def mark_notifications_read(info: Info, ids: list[strawberry.ID] | None = None) -> int:
    return await info.context.services.notifications.mark_read(
        info.context.viewer, None if ids is None else [str(i) for i in ids]
    )
