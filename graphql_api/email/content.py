"""What one email lists, decided when it is sent, by the access policy of that moment.

An email lists the user's notifications of its window that are still unread (neither marked read
nor seen: a message at or before the user's read mark of the conversation was seen) and not listed
in an earlier email, grouped by conversation (most recent activity first), each with the subject,
the company, the authors and the latest previews (`bodyText`). Left out:
- the notifications of a conversation the user may no longer read (`policy.can_read`), and the
  messages it may not read (`policy.can_read_message`: notes are never shown to clients);
- deleted messages (a message document with `deleted_ms` set, SPEC §14);
- muted conversations (`is_muted`, SPEC §13);
- everything, when the user's email setting is OFF, or no longer the email's frequency.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from graphql_api.conversations.models import Conversation, Message
from graphql_api.conversations.read_marks import read_mark_id
from graphql_api.database import Db, Document
from graphql_api.directory.models import Company, User, former_user
from graphql_api.email.outbox import OutboxEmail
from graphql_api.email.preferences import EmailFrequency, NotificationSettings
from graphql_api.policy import can_read, can_read_message

PREVIEWS_PER_CONVERSATION = 3
PREVIEW_CHARACTERS = 280


def is_muted(user: User, conversation: Conversation) -> bool:
    """Whether `user` muted `conversation` (SPEC §13 `muteConversation`, per viewer: the
    conversation's `muted_by`). The one hook through which email follows muting."""
    return user.id in conversation.muted_by


def is_deleted(doc: Document) -> bool:
    """A deleted message (SPEC §14: `deleteMessage` sets `deleted_ms`) is never emailed."""
    return doc.get("deleted_ms") is not None


@dataclass(frozen=True, slots=True)
class Preview:
    author: str
    text: str
    created_ms: int


@dataclass(slots=True)
class ConversationDigest:
    conversation: Conversation
    company: str | None
    link: str
    reply_address: str
    previews: list[Preview] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    count: int = 0

    @property
    def latest_ms(self) -> int:
        return max((p.created_ms for p in self.previews), default=0)


@dataclass(slots=True)
class Digest:
    """Everything one email shows; empty when there is nothing to send."""

    user: User
    locale: str
    kind: EmailFrequency
    conversations: list[ConversationDigest]
    notification_ids: list[str]

    @property
    def message_count(self) -> int:
        return sum(c.count for c in self.conversations)


@dataclass(slots=True)
class Recipient:
    user: User
    settings: NotificationSettings


class DigestBuilder:
    """Loads what a batch of claimed emails needs in a few queries, then builds each digest."""

    def __init__(
        self,
        db: Db,
        link_for: Callable[[str], str],
        reply_address_for: Callable[[str, str], str],
    ) -> None:
        self.db = db
        self._link_for = link_for
        self._reply_address_for = reply_address_for

    async def recipients(self, emails: list[OutboxEmail]) -> dict[str, Recipient]:
        docs = await self.db.users.find({"_id": {"$in": [e.user_id for e in emails]}}).to_list()
        return {
            doc["_id"]: Recipient(
                user=User.from_doc(doc), settings=NotificationSettings.from_user_doc(doc)
            )
            for doc in docs
        }

    async def build(
        self, emails: list[OutboxEmail], recipients: dict[str, Recipient]
    ) -> dict[str, Digest]:
        """The digest of each email whose user still wants it (others are left out)."""
        wanted = [
            e
            for e in emails
            if e.user_id in recipients and recipients[e.user_id].settings.email is e.kind
        ]
        if not wanted:
            return {}
        notifications = await self.db.notifications.find(
            {
                "user_id": {"$in": sorted({e.user_id for e in wanted})},
                "unread": {"$eq": 1},
                "created_ms": {
                    "$gte": min(e.from_ms for e in wanted),
                    "$lt": max(e.until_ms for e in wanted),
                },
            }
        ).to_list()
        notifications = [n for n in notifications if n.get("emailed_ms") is None]
        marks = await self._read_marks(notifications)
        conversations = await self._by_id(
            "conversations", {n["conversation_id"] for n in notifications}
        )
        messages = await self._by_id("messages", {n["message_id"] for n in notifications})
        author_ids = {m["author_id"] for m in messages.values()}
        company_ids = {c.get("company_id") for c in conversations.values()} - {None}
        authors = {
            u["_id"]: User.from_doc(u) for u in (await self._by_id("users", author_ids)).values()
        }
        companies = {
            c["_id"]: Company.from_doc(c)
            for c in (await self._by_id("companies", company_ids)).values()
        }
        by_user: dict[str, list[Document]] = defaultdict(list)
        for n in notifications:
            by_user[n["user_id"]].append(n)
        digests = {}
        for email in wanted:
            recipient = recipients[email.user_id]
            mine = [
                n
                for n in by_user[email.user_id]
                if email.from_ms <= n["created_ms"] < email.until_ms
            ]
            digests[email.id] = await self._digest(
                email, recipient, mine, conversations, messages, authors, companies, marks
            )
        return digests

    async def _read_marks(self, notifications: list[Document]) -> dict[str, int]:
        """Each (user, conversation)'s read mark: a message the user has seen in the
        conversation (opened it) counts as read, whether or not its notification was marked."""
        ids = {read_mark_id(n["user_id"], n["conversation_id"]) for n in notifications}
        if not ids:
            return {}
        docs = await self.db.read_marks.find({"_id": {"$in": sorted(ids)}}).to_list()
        return {d["_id"]: int(d.get("seq", 0)) for d in docs}

    async def _by_id(self, collection: str, ids: set[str]) -> dict[str, Document]:
        if not ids:
            return {}
        docs = await self.db[collection].find({"_id": {"$in": sorted(ids)}}).to_list()
        return {d["_id"]: d for d in docs}

    async def _digest(
        self,
        email: OutboxEmail,
        recipient: Recipient,
        notifications: list[Document],
        conversation_docs: dict[str, Document],
        message_docs: dict[str, Document],
        authors: dict[str, User],
        companies: dict[str, Company],
        marks: dict[str, int],
    ) -> Digest:
        user = recipient.user
        groups: dict[str, ConversationDigest] = {}
        listed: list[str] = []
        for n in sorted(notifications, key=lambda n: n["created_ms"]):
            conversation_doc = conversation_docs.get(n["conversation_id"])
            message_doc = message_docs.get(n["message_id"])
            if conversation_doc is None or message_doc is None or is_deleted(message_doc):
                continue
            if int(message_doc["seq"]) <= marks.get(read_mark_id(user.id, n["conversation_id"]), 0):
                continue  # seen: the user opened the conversation since
            conversation = Conversation.from_doc(conversation_doc)
            message = Message.from_doc(message_doc)
            if not can_read(user, conversation) or not can_read_message(
                user, conversation, message
            ):
                continue
            group = groups.get(conversation.id)
            if group is None:
                if is_muted(user, conversation):
                    continue
                company = companies.get(conversation.company_id or "")
                group = groups[conversation.id] = ConversationDigest(
                    conversation=conversation,
                    company=company.name if company else None,
                    link=self._link_for(conversation.id),
                    reply_address=self._reply_address_for(user.id, conversation.id),
                )
            author = authors.get(message.author_id) or former_user(message.author_id, user.firm_id)
            if author.name not in group.authors:
                group.authors.append(author.name)
            group.previews.append(
                Preview(author.name, _preview(message.body_text), int(message_doc["created_ms"]))
            )
            group.count += 1
            listed.append(n["_id"])
        ordered = sorted(groups.values(), key=lambda g: g.latest_ms, reverse=True)
        for group in ordered:
            group.previews = group.previews[-PREVIEWS_PER_CONVERSATION:][::-1]
        return Digest(
            user=user,
            locale=user.locale,
            kind=email.kind,
            conversations=ordered,
            notification_ids=listed,
        )


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= PREVIEW_CHARACTERS:
        return flat
    return flat[: PREVIEW_CHARACTERS - 1].rstrip() + "…"
