"""Resolvers of the conversation part of the contract."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.errors import NotFound
from graphql_api.pagination import activity_cursor
from schema.conversation_inputs import CreateConversationInput, SendMessageInput
from schema.conversation_types import ConversationType, ConversationTypeEnum, MessageType
from schema.directory_types import UserType
from schema.pagination import Connection, Edge, page_info

ConversationConnection = Connection[ConversationType]


async def conversation(info: Info, id: strawberry.ID) -> ConversationType | None:
    try:
        found = await info.context.services.conversations.get(info.context.viewer, id)
    except NotFound:
        return None  # the contract: null, alike for absent and unreadable ids
    return ConversationType(record=found)


async def conversations(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    type: ConversationTypeEnum | None = None,
    company_id: strawberry.ID | None = None,
    unread_only: bool | None = False,
) -> ConversationConnection:
    page = await info.context.services.conversations.inbox(
        info.context.viewer,
        first=first,
        after=after,
        kind=type.to_domain() if type else None,
        company_id=company_id,
        unread_only=bool(unread_only),
    )
    cursors = [activity_cursor(c.last_activity_ms, c.id) for c in page.items]
    return ConversationConnection(
        edges=[
            Edge(cursor=cur, node=ConversationType(record=c))
            for cur, c in zip(cursors, page.items, strict=True)
        ],
        page_info=page_info(cursors, page.has_next_page, page.has_previous_page),
    )


async def eligible_participants(
    info: Info,
    type: ConversationTypeEnum,
    company_id: strawberry.ID | None = None,
    search: str | None = None,
) -> list[UserType]:
    users = await info.context.services.conversations.eligible_participants(
        info.context.viewer, type.to_domain(), company_id, search
    )
    return [UserType(record=u) for u in users]


async def create_conversation(info: Info, input: CreateConversationInput) -> ConversationType:
    created = await info.context.services.conversations.create(
        info.context.viewer,
        kind=input.type.to_domain(),
        company_id=input.company_id,
        participant_ids=list(input.participant_ids),
        subject=input.subject,
        body=input.body,
        attachment_ids=list(input.attachment_ids or []),
        client_message_id=input.client_message_id,
    )
    return ConversationType(record=created)


async def send_message(info: Info, input: SendMessageInput) -> MessageType:
    message = await info.context.services.conversations.send(
        info.context.viewer,
        conversation_id=input.conversation_id,
        body=input.body,
        attachment_ids=list(input.attachment_ids or []),
        client_message_id=input.client_message_id,
    )
    return MessageType(record=message)


async def mark_conversation_read(info: Info, conversation_id: strawberry.ID) -> ConversationType:
    found = await info.context.services.conversations.mark_read(
        info.context.viewer, conversation_id
    )
    return ConversationType(record=found)
