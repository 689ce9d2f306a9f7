"""Resolvers of notifications: the list and marking them read."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.pagination import notification_cursor
from graphql_api.policy import can_read
from schema.notification_types import NotificationType
from schema.pagination import Connection, Edge, page_info

NotificationConnection = Connection[NotificationType]


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
    visible = [
        n
        for n, c in zip(items, conversations, strict=True)
        if c is not None and can_read(viewer, c)
    ]
    edges = [
        Edge(cursor=notification_cursor(n.read_ms is None, n.id), node=NotificationType(record=n))
        for n in visible
    ]
    return NotificationConnection(
        edges=edges,
        page_info=page_info([edge.cursor for edge in edges], has_next, after is not None),
    )


async def mark_notifications_read(info: Info, ids: list[strawberry.ID] | None = None) -> int:
    return await info.context.services.notifications.mark_read(
        info.context.viewer, None if ids is None else [str(i) for i in ids]
    )
