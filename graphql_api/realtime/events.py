"""The events that subscriptions listen to, and the topics they are published on.

An event carries the stored document's record (as this process wrote it, or as another
process's change carries it, `sources.py`), never the client's input. Topics: a conversation's
messages (`messageAdded`), a user's notifications (`notificationAdded`), rewrites of messages
and changes of a conversation or of its read marks (`messageUpdated`, `conversationUpdated`, on
the conversation's topic) and changes to a user's own document (favorites: access is re-checked
with them). `Resync` tells a topic's subscribers that events were lost.

Inbox activity (`inboxUpdated`) goes to the conversation's possible readers only, never to a
whole firm: the inbox topic of each participant, and, when the policy lets favorites holders
read it beyond its participants (`policy.favorites_reach`), the topic of its company, which
every inbox subscriber with that company in its favorites listens to. Each subscriber still
checks the event with the policy; the topics only spare the others from waking (issue 16: a
message used to wake all of a firm's inbox subscribers). The firm's topic carries no event: its
inbox subscribers are registered there so that a change stream can tell whether anyone in this
process watches the firm's inboxes before it reads a document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from graphql_api.conversations.models import Conversation, Message
from graphql_api.directory.models import User
from graphql_api.notifications.models import Notification
from graphql_api.policy import favorites_reach

Topic = tuple[str, str]


def conversation_topic(conversation_id: str) -> Topic:
    return ("conversation", conversation_id)


def firm_topic(firm_id: str) -> Topic:
    return ("firm", firm_id)


def user_topic(user_id: str) -> Topic:
    return ("user", user_id)


def inbox_topic(user_id: str) -> Topic:
    return ("inbox", user_id)


def company_topic(company_id: str) -> Topic:
    return ("company", company_id)


def inbox_topics(conversation: Conversation) -> list[Topic]:
    """Where a conversation's inbox activity goes: every participant, and its company's
    favorites holders when the policy lets them read it."""
    topics = [inbox_topic(user_id) for user_id in conversation.participant_ids]
    reach = favorites_reach(conversation)
    if reach is not None:
        topics.append(company_topic(reach))
    return topics


def viewer_inbox_topics(viewer: User) -> frozenset[Topic]:
    """What an inbox subscriber listens to: its own changes, its inbox, its favorite companies,
    and its firm (no event: see the module docstring)."""
    return frozenset(
        (
            user_topic(viewer.id),
            inbox_topic(viewer.id),
            firm_topic(viewer.firm_id),
            *(company_topic(c) for c in viewer.favorite_company_ids),
        )
    )


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
        # The first message arrives with its conversation's creation.
        if self.message.seq > 1 and self.conversation is not None:
            topics += inbox_topics(self.conversation)
        return topics


@dataclass(frozen=True, slots=True)
class ConversationCreated:
    conversation: Conversation

    def key(self) -> str | None:
        return event_key("conversations", self.conversation.id)

    def topics(self) -> list[Topic]:
        return inbox_topics(self.conversation)


@dataclass(frozen=True, slots=True)
class NotificationAdded:
    notification: Notification
    message: Message | None = None
    conversation: Conversation | None = None
    """The notified message and its conversation as stored with it, when known: a subscriber
    checks access and shows them without reading them again."""

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
        return [conversation_topic(self.conversation.id)]


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
