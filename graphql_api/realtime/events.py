"""The events that subscriptions listen to, and the topics they are published on.

An event carries the stored document's record, re-read from the database, never the client's
input. Topics: a conversation's messages (`messageAdded`), a firm's conversation activity
(`inboxUpdated`, filtered per subscriber by the access policy), a user's notifications
(`notificationAdded`), rewrites of messages and changes of a conversation or of its read marks
(`messageUpdated`, `conversationUpdated`, on the conversation's topic) and changes to a user's
own document (favorites: access is re-checked with
them). `Resync` tells a topic's subscribers that events were lost.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from graphql_api.conversations.models import Conversation, Message
from graphql_api.notifications.models import Notification

Topic = tuple[str, str]


def conversation_topic(conversation_id: str) -> Topic:
    return ("conversation", conversation_id)


def firm_topic(firm_id: str) -> Topic:
    return ("firm", firm_id)


def user_topic(user_id: str) -> Topic:
    return ("user", user_id)


def event_key(collection: str, document_id: str) -> str:
    """The key under which the hub remembers an inserted document's event (dedupe)."""
    return f"{collection}:{document_id}"


@dataclass(frozen=True, slots=True)
class MessageAdded:
    message: Message
    conversation: Conversation | None = None
    """The conversation as updated by this message (for the inbox), when known."""

    def key(self) -> str | None:
        return event_key("messages", self.message.id)

    def topics(self) -> list[Topic]:
        topics = [conversation_topic(self.message.conversation_id)]
        if self.message.seq > 1:  # the first message arrives with its conversation's creation
            topics.append(firm_topic(self.message.firm_id))
        return topics


@dataclass(frozen=True, slots=True)
class ConversationCreated:
    conversation: Conversation

    def key(self) -> str | None:
        return event_key("conversations", self.conversation.id)

    def topics(self) -> list[Topic]:
        return [firm_topic(self.conversation.firm_id)]


@dataclass(frozen=True, slots=True)
class NotificationAdded:
    notification: Notification

    def key(self) -> str | None:
        return event_key("notifications", self.notification.id)

    def topics(self) -> list[Topic]:
        return [user_topic(self.notification.user_id)]


@dataclass(frozen=True, slots=True)
class UserChanged:
    user_id: str

    def key(self) -> str | None:
        return None  # every change of a user matters

    def topics(self) -> list[Topic]:
        return [user_topic(self.user_id)]


@dataclass(frozen=True, slots=True)
class MessageUpdated:
    """A message was edited or deleted (`messageUpdated`): one event per version."""

    message: Message

    def key(self) -> str | None:
        return message_version_key(self.message.id, self.message.version)

    def topics(self) -> list[Topic]:
        return [conversation_topic(self.message.conversation_id)]


@dataclass(frozen=True, slots=True)
class ConversationChanged:
    """A conversation's shared state changed (participants, client visibility, subject, status,
    assignee: SPEC §13), carrying it as stored after the change: `conversationUpdated`.
    Subscribers of the conversation re-check access with it at once: a removed participant's
    `messageAdded` ends. Other processes publish it from the change stream's update of the
    conversation; the key (its state) makes that copy a duplicate of the local one."""

    conversation: Conversation

    def key(self) -> str | None:
        c = self.conversation
        return conversation_state_key(c.id, c.subject, c.participant_ids, c.status, c.assignee_id)

    def topics(self) -> list[Topic]:
        return [conversation_topic(self.conversation.id), firm_topic(self.conversation.firm_id)]


@dataclass(frozen=True, slots=True)
class ReadStateChanged:
    """A participant's read mark moved (`conversationUpdated`: receipts changed)."""

    user_id: str
    conversation_id: str
    seq: int

    def key(self) -> str | None:
        return f"read_marks:{self.user_id}:{self.conversation_id}@{self.seq}"

    def topics(self) -> list[Topic]:
        return [conversation_topic(self.conversation_id)]


@dataclass(frozen=True, slots=True)
class Resync:
    """Events were lost: a change stream's position fell off the oplog (MongoDB error 286) and
    it restarted from now. A subscriber re-reads what it shows (its viewer, and a conversation's
    messages after its cursor) instead of waiting for events that will never come."""

    topic: Topic

    def key(self) -> str | None:
        return None

    def topics(self) -> list[Topic]:
        return [self.topic]


def conversation_state_key(
    conversation_id: str,
    subject: object,
    participant_ids: Iterable[object],
    status: object,
    assignee_id: object,
) -> str:
    """The key of a conversation in one state of what `conversationUpdated` shows (a change
    stream sees every update of a conversation, most of them new messages: those keep it)."""
    state = json.dumps(
        [str(subject), sorted(str(p) for p in participant_ids), str(status), str(assignee_id)]
    )
    return f"conversations:{conversation_id}#{hashlib.sha1(state.encode()).hexdigest()}"


def message_version_key(message_id: str, version: int) -> str:
    """The key of a message's rewrite to `version` (an edit or the deletion)."""
    return f"messages:{message_id}@{version}"


Event = (
    MessageAdded
    | ConversationCreated
    | NotificationAdded
    | UserChanged
    | MessageUpdated
    | ConversationChanged
    | ReadStateChanged
    | Resync
)
