"""Editing and deleting messages (SPEC §14).

Both rewrite the message document in place, guarded by its `version` (two concurrent rewrites
cannot both apply to the same version: the second re-reads and decides again). An edit keeps the
current body as the newest revision. A deletion first copies the content to `retained_messages`
(the admin export of SPEC §17 reads it there; nothing else does), then empties the message: its
body, revisions and attachment list, which is what refuses its downloads (`policy.can_download`).
A deleted message that was unread stops counting through the conversation service's
`stop_counting`, the same path as a number taken by a failed write, and its notifications are
marked read (the badges agree with `unreadCount`). Search's copy of the text follows each rewrite
(`search.index.refresh_search_text`). Timeline events are nobody's to edit or delete. Each
rewrite carries its audit entry (SPEC §17) in the same write, chained right after.

The caller hands over a conversation and message it has loaded; every rule is the policy's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from pymongo import ReturnDocument

from graphql_api import clock
from graphql_api.compliance import audit
from graphql_api.conversations import validation
from graphql_api.conversations.models import (
    Conversation,
    Message,
    deleted_fields,
    edited_fields,
    retained_doc,
)
from graphql_api.database import Db, Document
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput, Forbidden, NotFound
from graphql_api.notifications.service import Notifications
from graphql_api.policy import can_delete_message, can_edit_message, can_read_message
from graphql_api.realtime.events import MessageUpdated
from graphql_api.realtime.sources import Publisher
from graphql_api.search.index import refresh_search_text

StopCounting = Callable[[Conversation, Message], Awaitable[None]]

# Concurrent rewrites of one message are rare (its author, a practitioner): after this many
# lost races the request gives up rather than loop.
MAX_ATTEMPTS = 5


class MessageEditor:
    """Edits and deletions of the messages of one database."""

    def __init__(
        self,
        db: Db,
        notifications: Notifications,
        publisher: Publisher,
        stop_counting: StopCounting,
        window: timedelta,
    ) -> None:
        self.db = db
        self.notifications = notifications
        self.publisher = publisher
        self.stop_counting = stop_counting
        self.window = window

    async def edit(
        self, viewer: User, conversation: Conversation, message: Message, body: str
    ) -> Message:
        """Replace the body of the viewer's own message, keeping the current one as a
        revision. Sanitized like a new message: empty only if the message has attachments."""
        _require_readable(viewer, conversation, message)
        html, text = await validation.clean_body(body, len(message.attachment_ids))
        for _ in range(MAX_ATTEMPTS):
            if message.is_deleted:
                raise BadUserInput("a deleted message cannot be edited", field="messageId")
            if not can_edit_message(viewer, message, self.window, clock.now()):
                raise Forbidden(self._edit_refusal(viewer, message))
            if html == message.body:
                return message  # nothing changes: no revision that equals the current body
            updated = await self._rewrite(
                message,
                edited_fields(message, html, text, clock.now_ms()),
                _entry(viewer, conversation, message, audit.AuditAction.MESSAGE_EDITED),
            )
            if updated is not None:
                # Search finds the new words, and no longer the old ones (docs/search.md).
                await refresh_search_text(self.db, conversation, [updated.id])
                self.publisher.emit(MessageUpdated(updated))
                return updated
            message = await self._reload(message)
        raise Forbidden("the message is being changed by someone else; try again")

    async def delete(self, viewer: User, conversation: Conversation, message: Message) -> Message:
        """Withdraw a message: readers keep its place, who deleted it and when; its content
        goes to the retained store. Deleting a deleted message changes nothing."""
        _require_readable(viewer, conversation, message)
        for _ in range(MAX_ATTEMPTS):
            if message.is_deleted:
                return message
            now_ms = clock.now_ms()
            if not can_delete_message(viewer, message, self.window, clock.now()):
                raise Forbidden(
                    "only a practitioner, or its author within "
                    f"{_hours(self.window)} of sending, may delete this message"
                )
            # Retained, then uncounted, then emptied: if the process dies before the last step
            # the message is still whole and a retry does it all again (the same retained
            # document; its numbers are read as a set). Emptied first, a crash would leave a
            # deleted message counted as unread, which a retry (already deleted) never repairs.
            await self.db.retained_messages.replace_one(
                {"_id": message.id}, retained_doc(message, viewer.id, now_ms), upsert=True
            )
            await self.stop_counting(conversation, message)
            updated = await self._rewrite(
                message,
                deleted_fields(message, viewer.id, now_ms),
                _entry(viewer, conversation, message, audit.AuditAction.MESSAGE_DELETED),
            )
            if updated is not None:
                await refresh_search_text(self.db, conversation, [updated.id])
                await self.notifications.mark_message_read(updated, conversation.participant_ids)
                self.publisher.emit(MessageUpdated(updated))
                return updated
            message = await self._reload(message)
        raise Forbidden("the message is being changed by someone else; try again")

    def _edit_refusal(self, viewer: User, message: Message) -> str:
        if message.author_id != viewer.id:
            return "only its author may edit a message"
        return f"a message may be edited only within {_hours(self.window)} of sending"

    async def _rewrite(self, message: Message, fields: Document, entry: Document) -> Message | None:
        """Apply `fields` if the message is still at the version it was read at, with the
        audit `entry` in the same write, then chain it; None when another rewrite came first."""
        doc = await self.db.messages.find_one_and_update(
            {**_message_key(message), "version": _version_filter(message.version)},
            {"$set": {**fields, **audit.pending_fields(entry)}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        await audit.commit(self.db, "messages", _message_key(message), entry)
        return Message.from_doc(doc)

    async def _reload(self, message: Message) -> Message:
        doc = await self.db.messages.find_one(_message_key(message))
        if doc is None:
            raise NotFound("message not found")
        return Message.from_doc(doc)


def _entry(
    viewer: User, conversation: Conversation, message: Message, action: audit.AuditAction
) -> Document:
    return audit.new_entry(
        viewer.firm_id,
        audit.Actor.of(viewer),
        action,
        conversation_id=conversation.id,
        company_id=conversation.company_id,
        details={
            "messageId": message.id,
            "authorId": message.author_id,
            "kind": message.kind.value,
        },
    )


def _require_readable(viewer: User, conversation: Conversation, message: Message) -> None:
    if not can_read_message(viewer, conversation, message):
        raise NotFound("message not found")


def _message_key(message: Message) -> Document:
    """A single message: its id and its shard key (`conversation_id`)."""
    return {"_id": message.id, "conversation_id": {"$eq": message.conversation_id}}


def _version_filter(version: int) -> Document:
    # Messages never rewritten have no `version` field.
    return {"$eq": version} if version else {"$exists": False}


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} hours" if hours >= 1 else f"{window.total_seconds():g} seconds"
