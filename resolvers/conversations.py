"""Resolvers of the conversation part of the contract: parse, call the service, map to a type.

The field's guard (`schema.permissions`) has already checked the conversation or company an
argument names, through the operation's loaders; the resolver reads it from there.
"""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.conversations import models
from graphql_api.directory.models import Company as CompanyRecord
from graphql_api.errors import NotFound
from graphql_api.pagination import activity_cursor
from graphql_api.policy import audience_of
from schema import inbox_rows
from schema.conversation_inputs import CreateConversationInput, SendMessageInput
from schema.conversation_types import (
    Conversation,
    ConversationConnection,
    Message,
    UnreadSummary,
)
from schema.directory_types import User
from schema.enums import ConversationStatus, ConversationType
from schema.pagination import connection


async def _readable(info: Info, conversation_id: object) -> models.Conversation:
    found = await info.context.readable_conversation(conversation_id)
    if found is None:
        raise NotFound("conversation not found")
    return found


async def _company(info: Info, company_id: object | None) -> CompanyRecord | None:
    if company_id is None:
        return None
    found = await info.context.visible_company(company_id)
    if found is None:
        raise NotFound("company not found")
    return found


async def conversation(info: Info, id: strawberry.ID) -> Conversation | None:
    found = await info.context.readable_conversation(id)
    return Conversation(record=found) if found else None


async def conversations(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    type: ConversationType | None = None,
    company_id: strawberry.ID | None = None,
    unread_only: bool | None = False,
    status: ConversationStatus | None = None,
    assignee_id: strawberry.ID | None = None,
    archived: bool | None = False,
) -> ConversationConnection:
    viewer = info.context.viewer
    page = await info.context.services.conversations.inbox(
        viewer,
        first=first,
        after=after,
        kind=type,
        company_id=company_id,
        unread_only=bool(unread_only),
        status=status,
        assignee_id=assignee_id,
        archived=bool(archived),
    )
    audience = audience_of(viewer)
    # What the page shows of each conversation, read for all of them at once (issue 16).
    preloaded = dict(
        zip(
            (c.id for c in page.items),
            await inbox_rows.preload(info, page.items, inbox_rows.node_fields(info)),
            strict=True,
        )
    )
    return connection(
        page,
        cursor=lambda c: activity_cursor(c.activity_ms(audience), c.id),
        node=lambda c: Conversation(record=c, preloaded=preloaded[c.id]),
    )


async def eligible_participants(
    info: Info,
    type: ConversationType,
    company_id: strawberry.ID | None = None,
    search: str | None = None,
) -> list[User]:
    users = await info.context.services.conversations.eligible_participants(
        info.context.viewer, type, await _company(info, company_id), search
    )
    return [User(record=u) for u in users]


async def create_conversation(info: Info, input: CreateConversationInput) -> Conversation:
    created = await info.context.services.conversations.create(
        info.context.viewer,
        kind=input.type,
        company=await _company(info, input.company_id),
        participant_ids=list(input.participant_ids),
        subject=input.subject,
        body=input.body,
        attachment_ids=list(input.attachment_ids or []),
        client_message_id=input.client_message_id,
    )
    return Conversation(record=created)


async def send_message(info: Info, input: SendMessageInput) -> Message:
    message = await info.context.services.conversations.send(
        info.context.viewer,
        conversation=await _readable(info, input.conversation_id),
        body=input.body,
        attachment_ids=list(input.attachment_ids or []),
        client_message_id=input.client_message_id,
        internal=bool(input.internal),
    )
    return Message(record=message)


async def mark_conversation_read(info: Info, conversation_id: strawberry.ID) -> Conversation:
    found = await info.context.services.conversations.mark_read(
        info.context.viewer, await _readable(info, conversation_id)
    )
    return Conversation(record=found)


# -- lifecycle (SPEC §13) ---------------------------------------------------------------------


async def add_participants(
    info: Info, conversation_id: strawberry.ID, user_ids: list[strawberry.ID]
) -> Conversation:
    found = await info.context.services.lifecycle.add_participants(
        info.context.viewer, await _readable(info, conversation_id), [str(u) for u in user_ids]
    )
    return Conversation(record=found)


async def remove_participant(
    info: Info, conversation_id: strawberry.ID, user_id: strawberry.ID
) -> Conversation:
    found = await info.context.services.lifecycle.remove_participant(
        info.context.viewer, await _readable(info, conversation_id), str(user_id)
    )
    return Conversation(record=found)


async def rename_conversation(
    info: Info, conversation_id: strawberry.ID, subject: str
) -> Conversation:
    found = await info.context.services.lifecycle.rename(
        info.context.viewer, await _readable(info, conversation_id), subject
    )
    return Conversation(record=found)


async def set_conversation_status(
    info: Info, conversation_id: strawberry.ID, status: ConversationStatus
) -> Conversation:
    found = await info.context.services.lifecycle.set_status(
        info.context.viewer, await _readable(info, conversation_id), status
    )
    return Conversation(record=found)


async def assign_conversation(
    info: Info, conversation_id: strawberry.ID, assignee_id: strawberry.ID | None = None
) -> Conversation:
    found = await info.context.services.lifecycle.assign(
        info.context.viewer,
        await _readable(info, conversation_id),
        None if assignee_id is None else str(assignee_id),
    )
    return Conversation(record=found)


async def archive_conversation(
    info: Info, conversation_id: strawberry.ID, archived: bool
) -> Conversation:
    found = await info.context.services.lifecycle.archive(
        info.context.viewer, await _readable(info, conversation_id), archived
    )
    return Conversation(record=found)


async def mute_conversation(
    info: Info, conversation_id: strawberry.ID, muted: bool
) -> Conversation:
    found = await info.context.services.lifecycle.mute(
        info.context.viewer, await _readable(info, conversation_id), muted
    )
    return Conversation(record=found)


async def _readable_message(
    info: Info, message_id: object
) -> tuple[models.Conversation, models.Message]:
    found = await info.context.readable_message(message_id)
    if found is None:
        raise NotFound("message not found")
    return found


async def edit_message(info: Info, message_id: strawberry.ID, body: str) -> Message:
    conversation, message = await _readable_message(info, message_id)
    edited = await info.context.services.editing.edit(
        info.context.viewer, conversation, message, body
    )
    return Message(record=edited)


async def delete_message(info: Info, message_id: strawberry.ID) -> Message:
    conversation, message = await _readable_message(info, message_id)
    deleted = await info.context.services.editing.delete(info.context.viewer, conversation, message)
    return Message(record=deleted)


async def unread_summary(info: Info) -> UnreadSummary:
    summary = await info.context.services.conversations.unread_summary(info.context.viewer)
    return UnreadSummary(
        conversations=summary.conversations,
        messages=summary.messages,
        notifications=summary.notifications,
    )
