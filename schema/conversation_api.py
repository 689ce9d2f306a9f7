"""The conversations' root fields, composed into Query and Mutation by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import conversations as resolve
from schema.conversation_types import (
    Conversation,
    ConversationConnection,
    Message,
    UnreadSummary,
)
from schema.directory_types import User
from schema.permissions import (
    DesignateParticipants,
    ManageConversation,
    ReadableConversations,
    ReadConversation,
    ReadMessage,
    guarded,
)


@strawberry.type
class ConversationQuery:
    conversation: Conversation | None = strawberry.field(
        resolver=resolve.conversation,
        description="A conversation the viewer may read; null when absent or not readable.",
        **guarded(ReadConversation, silent=True),
    )
    conversations: ConversationConnection = strawberry.field(
        resolver=resolve.conversations,
        description="The inbox: readable conversations by last activity, newest first; "
        "`archived: true` lists the viewer's archived ones instead.",
        **guarded(ReadableConversations),
    )
    eligible_participants: list[User] = strawberry.field(
        resolver=resolve.eligible_participants,
        description="Exactly the users the viewer may designate for such a conversation "
        "(at most 200, by name; narrow with `search` on name or email).",
        **guarded(DesignateParticipants),
    )
    unread_summary: UnreadSummary = strawberry.field(
        resolver=resolve.unread_summary,
        description="The viewer's badges: conversations with unread messages, unread messages "
        "and unread notifications, over the conversations it may read.",
        **guarded(ReadableConversations),
    )


@strawberry.type
class ConversationMutation:
    create_conversation: Conversation = strawberry.mutation(
        resolver=resolve.create_conversation,
        description="Send a new message: creates the conversation and its first message.",
        **guarded(DesignateParticipants),
    )
    send_message: Message = strawberry.mutation(
        resolver=resolve.send_message,
        description="Reply to a readable conversation.",
        **guarded(ReadConversation),
    )
    mark_conversation_read: Conversation = strawberry.mutation(
        resolver=resolve.mark_conversation_read,
        description="Move the viewer's read mark to the conversation's newest message.",
        **guarded(ReadConversation),
    )
    add_participants: Conversation = strawberry.mutation(
        resolver=resolve.add_participants,
        description="Add users the viewer could designate for such a conversation (at most 100 "
        "participants); they read the whole history and are notified from now on.",
        **guarded(ReadConversation),
    )
    remove_participant: Conversation = strawberry.mutation(
        resolver=resolve.remove_participant,
        description="Remove a participant (practitioners), or leave (anyone).",
        **guarded(ReadConversation),
    )
    rename_conversation: Conversation = strawberry.mutation(
        resolver=resolve.rename_conversation,
        description="Change the subject (1 to 200 characters).",
        **guarded(ReadConversation),
    )
    set_conversation_status: Conversation = strawberry.mutation(
        resolver=resolve.set_conversation_status,
        description="Set the status (practitioners). A client's new message reopens it.",
        **guarded(ManageConversation),
    )
    assign_conversation: Conversation = strawberry.mutation(
        resolver=resolve.assign_conversation,
        description="Set or clear (null) the assignee, a practitioner of the firm, who becomes "
        "a participant (practitioners).",
        **guarded(ManageConversation),
    )
    archive_conversation: Conversation = strawberry.mutation(
        resolver=resolve.archive_conversation,
        description="Archive for the viewer: out of its default inbox until a message it may "
        "read arrives.",
        **guarded(ReadConversation),
    )
    mute_conversation: Conversation = strawberry.mutation(
        resolver=resolve.mute_conversation,
        description="Mute for the viewer: no notifications of it; unread counts still move.",
        **guarded(ReadConversation),
    )
    edit_message: Message = strawberry.mutation(
        resolver=resolve.edit_message,
        description="Replace the body of your own message (or note) within the edit window "
        "(24 hours by default); earlier versions stay in `revisions`.",
        **guarded(ReadMessage),
    )
    delete_message: Message = strawberry.mutation(
        resolver=resolve.delete_message,
        description="Delete a message: its author within the edit window, or any practitioner "
        "who may read it. Readers then see it empty, with `deletedAt` and `deletedBy`.",
        **guarded(ReadMessage),
    )
