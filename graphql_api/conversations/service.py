"""Writing and reading conversations: creation, replies, the inbox, history and read state.

Creating a conversation writes its first message, then the conversation: the conversation
document is the commit point, since every read reaches messages through a readable conversation,
so a failure between the two leaves nothing a user can see. A reply takes the next `seq` from the
conversation's counter (one atomic update that also moves its last activity), then stores the
message. `clientMessageId` makes both safe to retry: a unique index per author turns a second
attempt into the answer of the first.

Notes and timeline events (SPEC §13) go through the same path: numbering a message moves the
counters and the last activity of the audiences its kind counts for (`models`), in the one
update that takes its `seq`, so a note adds no command to a send and changes nothing a client
is shown. The lifecycle changes themselves are `lifecycle.py`'s; `record_change` is the step
they share: the change and the number of its timeline event in one update, then the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from strawberry.dataloader import DataLoader

from graphql_api import clock
from graphql_api.attachments.store import AttachmentStore
from graphql_api.compliance import audit
from graphql_api.conversations import history, validation
from graphql_api.conversations.history import DEFAULT_HISTORY_PAGE, HistoryRequest
from graphql_api.conversations.inbox_query import ActivityKey, readable_in_activity_order
from graphql_api.conversations.models import (
    ARCHIVED_FIELDS,
    Audience,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    ConversationType,
    Message,
    MessageKind,
    MessageRef,
    counts_for,
    new_conversation_doc,
    new_message_doc,
)
from graphql_api.conversations.read_marks import (
    Mark,
    ReadMark,
    marks_by_pair,
    marks_of_participants,
    move_read_marks,
)
from graphql_api.conversations.recovery import newest_message
from graphql_api.database import Db, Document
from graphql_api.directory.models import Company, User
from graphql_api.directory.service import Directory, search_filter
from graphql_api.errors import ApiError, BadUserInput, Forbidden, NotFound
from graphql_api.group_commit import GroupCommit
from graphql_api.ids import is_id, new_id, parse_id
from graphql_api.notifications.service import Notifications
from graphql_api.pagination import Page, page_size, parse_activity_cursor
from graphql_api.policy import (
    audience_of,
    can_manage,
    can_read,
    client_visibility_sources,
    eligible_participants_filter,
    fetch_readable,
    may_read_kind,
    readable_branches,
    readable_messages_filter,
    readable_notifications_filter,
    require_readable,
)
from graphql_api.ratelimit import RateLimiter
from graphql_api.realtime.events import (
    ConversationChanged,
    ConversationCreated,
    MessageAdded,
    NotificationAdded,
    ReadStateChanged,
)
from graphql_api.realtime.sources import Publisher
from graphql_api.search.index import search_fields

T = TypeVar("T")

MAX_ELIGIBLE_RESULTS = 200
UNREAD_SCAN_BATCH = 200
# `unreadSummary` reads the counters of every readable conversation: this many per command (a
# few bytes each once projected), so that an inbox of any usual size costs one command per
# branch of the access rule.
SUMMARY_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class UnreadSummary:
    """The viewer's badges: conversations with unread messages, unread messages, unread
    notifications."""

    conversations: int
    messages: int
    notifications: int


class Conversations:
    """The conversation domain for one database."""

    def __init__(
        self,
        db: Db,
        directory: Directory,
        attachments: AttachmentStore,
        notifications: Notifications,
        publisher: Publisher,
        limiter: RateLimiter,
    ) -> None:
        self.db = db
        self.directory = directory
        self.attachments = attachments
        self.notifications = notifications
        self.publisher = publisher
        self.limiter = limiter
        self._key_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._read_mark_writes: GroupCommit[Mark] = GroupCommit(
            lambda marks: move_read_marks(self.db, marks)
        )
        self._unread_batches: DataLoader[tuple[User, Conversation], int] | None = None

    # -- writing -------------------------------------------------------------------------

    async def create(
        self,
        viewer: User,
        *,
        kind: ConversationType,
        company: Company | None,
        participant_ids: list[str],
        subject: str,
        body: str,
        attachment_ids: list[str] | None = None,
        client_message_id: str | None = None,
    ) -> Conversation:
        """Create a conversation and its first message; answer the conversation.

        `company` is one the policy lets the viewer see (the field's guard checked it)."""
        self.limiter.check(viewer.id, "conversation", "new conversations")
        validation.check_company_for_kind(kind, company)
        company_id = company.id if company is not None else None
        subject = validation.clean_subject(subject)
        attachments = validation.clean_attachment_ids(attachment_ids)
        html, text = await validation.clean_body(body, len(attachments))
        others = validation.clean_participant_ids(participant_ids, viewer.id)
        client_message_id = validation.clean_client_message_id(client_message_id)

        if client_message_id is not None:
            existing = await self._earlier_creation(viewer, client_message_id)
            if existing is not None:
                return existing
        participants = await self.eligible_users(viewer, kind, company_id, others)

        now = clock.now()
        message_id, conversation_id = new_id(), new_id()
        conversation_doc = new_conversation_doc(
            conversation_id=conversation_id,
            firm_id=viewer.firm_id,
            kind=kind,
            company_id=company_id,
            subject=subject,
            participant_ids=[viewer.id, *others],
            created_by=viewer.id,
            created_at=now,
            first_message_id=message_id,
            client_visible_by=client_visibility_sources(kind, company_id, [viewer, *participants]),
            client_message_id=client_message_id,
        )
        # The audit entry rides in the conversation's own insert (the commit point): a creation
        # that fails leaves none, one that succeeded keeps it until it is chained.
        entry = audit.new_entry(
            viewer.firm_id,
            audit.Actor.of(viewer),
            audit.AuditAction.CONVERSATION_CREATED,
            conversation_id=conversation_id,
            company_id=company_id,
            details={"type": kind.value, "participantIds": [viewer.id, *others]},
            at=now,
        )
        conversation_doc.update(audit.pending_document_fields(entry))
        message_doc = new_message_doc(
            message_id=message_id,
            firm_id=viewer.firm_id,
            conversation_id=conversation_id,
            seq=1,
            author_id=viewer.id,
            html=html,
            text=text,
            attachment_ids=attachments,
            created_at=now,
            recipients=others,
            client_message_id=None,  # the key is the conversation's: replies' keys are apart
        )
        await self._claim_attachments(viewer, attachments, message_id, conversation_id)
        message_doc.update(
            search_fields(
                Conversation.from_doc(conversation_doc),
                text,
                await self._filenames(attachments),
            )
        )
        # Before the message exists anywhere: unread counts rely on the author's mark (see
        # `unread_counts`), and events may reach other sessions as soon as it is stored.
        await self._move_read_mark(viewer.id, conversation_doc["_id"], 1, 1, 1)
        stored = await self._store_new_conversation(viewer, message_doc, conversation_doc)
        if stored.id == conversation_doc["_id"]:
            await self._after_message(Message.from_doc(message_doc), others, created=stored)
            await audit.commit(self.db, "conversations", conversation_key(stored), entry)
        return stored

    async def _earlier_creation(self, viewer: User, client_message_id: str) -> Conversation | None:
        """What an earlier attempt with this key created, or None; a key already used for a
        reply is refused."""
        existing = await self._conversation_by_client_id(viewer, client_message_id)
        if existing is None and await self._message_by_client_id(viewer, client_message_id):
            raise BadUserInput(
                "clientMessageId was already used for a message of another conversation",
                field="clientMessageId",
            )
        return existing

    async def _store_new_conversation(
        self, viewer: User, message_doc: Document, conversation_doc: Document
    ) -> Conversation:
        """Store the first message, then the conversation (the commit point: messages are only
        reached through their conversation). A concurrent retry with the same key that won
        answers its conversation instead."""
        message_id = message_doc["_id"]
        try:
            await self.db.messages.insert_one(message_doc)
            await self.db.conversations.insert_one(conversation_doc)
        except DuplicateKeyError:
            await self.db.messages.delete_one(
                {"_id": message_id, "conversation_id": {"$eq": conversation_doc["_id"]}}
            )
            await self.attachments.release(message_id)
            key = conversation_doc.get("client_message_id")
            existing = await self._conversation_by_client_id(viewer, key) if key else None
            if existing is None:
                raise
            return existing
        except BaseException:
            await _shielded(self.attachments.release(message_id))  # see `AttachmentStore`
            raise
        if message_doc["attachment_ids"]:
            await self.attachments.confirm(message_id)
        return Conversation.from_doc(conversation_doc)

    async def send(
        self,
        viewer: User,
        *,
        conversation: Conversation,
        body: str,
        attachment_ids: list[str] | None = None,
        client_message_id: str | None = None,
        internal: bool = False,
    ) -> Message:
        """Add a reply to `conversation`, which the policy lets the viewer read; `internal`: a
        note, which only a practitioner reader may post (SPEC §13)."""
        require_readable(viewer, conversation)
        if internal and not can_manage(viewer, conversation):
            raise Forbidden("only practitioners may post internal notes", field="internal")
        kind = MessageKind.NOTE if internal else MessageKind.MESSAGE
        self.limiter.check(viewer.id, "message", "messages")
        attachments = validation.clean_attachment_ids(attachment_ids)
        html, text = await validation.clean_body(body, len(attachments))
        client_message_id = validation.clean_client_message_id(client_message_id)
        if client_message_id is None:
            return await self._store_reply(
                viewer, conversation, kind, html, text, attachments, None
            )
        # Retries of one request usually arrive at one process: serialize them here, so that
        # only the first takes a `seq` (the unique index still settles retries across processes).
        async with self._key_lock(viewer.id, client_message_id):
            existing = await self._earlier_reply(viewer, client_message_id)
            if existing is not None:
                return await self._answer_retry(existing, conversation)
            return await self._store_reply(
                viewer, conversation, kind, html, text, attachments, client_message_id
            )

    async def _earlier_reply(self, viewer: User, client_message_id: str) -> Document | None:
        """The reply an earlier attempt with this key stored, or None; a key already used for
        a new conversation is refused."""
        existing = await self._message_by_client_id(viewer, client_message_id)
        if existing is None and await self.db.conversations.find_one(
            _created_with_key(viewer, client_message_id), {"_id": 1}
        ):
            raise BadUserInput(
                "clientMessageId was already used for a new conversation",
                field="clientMessageId",
            )
        return existing

    async def _answer_retry(self, stored: Document, conversation: Conversation) -> Message:
        """The message a retry asks for, once its notifications are written: the attempt that
        stored it may have died before writing them (a crash), and its client is asking again
        (they are written at most once each, whoever writes them)."""
        message = self._same_conversation(Message.from_doc(stored), conversation)
        if stored.get("fanout") == "pending":
            await self.notifications.fan_out(
                message, list(stored.get("recipients", ())), conversation.company_id
            )
        return message

    def _key_lock(self, user_id: str, client_message_id: str) -> asyncio.Lock:
        key = (user_id, client_message_id)
        lock = self._key_locks.get(key)
        if lock is None:
            lock = self._key_locks[key] = asyncio.Lock()
        return lock

    async def _store_reply(
        self,
        viewer: User,
        conversation: Conversation,
        kind: MessageKind,
        html: str,
        text: str,
        attachments: list[str],
        client_message_id: str | None,
    ) -> Message:
        now = clock.now()
        message_id = new_id()
        await self._claim_attachments(viewer, attachments, message_id, conversation.id)
        # A client's message hands a WAITING or RESOLVED conversation back to the firm.
        reopens = (
            kind is MessageKind.MESSAGE
            and viewer.is_client
            and conversation.status is not ConversationStatus.OPEN
        )
        extra: Document = {"status": ConversationStatus.OPEN.value} if reopens else {}
        try:
            updated = await self._take_seq(conversation, kind, message_id, now, extra)
        except BaseException:
            await _shielded(self.attachments.release(message_id))
            raise
        recipients = await self._recipients(updated, viewer.id, kind)
        doc = new_message_doc(
            message_id=message_id,
            firm_id=viewer.firm_id,
            conversation_id=conversation.id,
            seq=updated.message_count,
            author_id=viewer.id,
            html=html,
            text=text,
            attachment_ids=attachments,
            created_at=now,
            recipients=recipients,
            client_message_id=client_message_id,
            kind=kind,
            staff_n=updated.staff_count,
            client_n=updated.client_count,
        )
        doc.update(search_fields(updated, text, await self._filenames(attachments)))
        await self._move_read_mark(  # see `create`
            viewer.id, conversation.id, doc["seq"], doc["staff_n"], doc["client_n"]
        )
        stored = await self._insert_reply(doc, updated)
        if stored.id != message_id:
            return stored  # a retry on another process stored it first
        await self._after_message(stored, recipients, updated=updated)
        if reopens:
            event = ConversationEvent(actor_id=viewer.id, status=ConversationStatus.OPEN)
            await self.record_change(viewer, updated, {}, event)
        return stored

    async def _take_seq(
        self,
        conversation: Conversation,
        kind: MessageKind,
        message_id: str,
        now: datetime,
        extra: Document | None = None,
    ) -> Conversation:
        """Number a new message of `kind`: the next `seq`, and for each audience it counts
        for, the next ordinal, its last activity (`now`) and no one archived any more; `extra`
        is set in the same update. Answers the conversation as updated."""
        increments: Document = {"message_count": 1}
        changes: Document = dict(extra or {})
        ms = clock.millis(now)
        if counts_for(kind, Audience.STAFF):
            increments["staff_count"] = 1
            changes.update(last_activity_ms=ms, last_message_id=message_id, archived_by_staff=[])
        if counts_for(kind, Audience.CLIENT):
            increments["client_count"] = 1
            changes.update(
                client_activity_ms=ms, client_last_message_id=message_id, archived_by_clients=[]
            )
        update: Document = {"$inc": increments}
        if changes:
            update["$set"] = changes
        await self._complete_counters(conversation)
        updated = await self.db.conversations.find_one_and_update(
            conversation_key(conversation), update, return_document=ReturnDocument.AFTER
        )
        if updated is None:
            raise NotFound("conversation not found")
        return Conversation.from_doc(updated)

    async def _complete_counters(self, conversation: Conversation) -> None:
        """A conversation stored before notes gets the audiences' counters and views before
        its first new message, from what it had (every message then counted for everyone):
        one more command, once per such conversation (docs/decisions.md)."""
        if conversation.counted:
            return
        await self.db.conversations.update_one(
            {**conversation_key(conversation), "staff_count": {"$exists": False}},
            {
                "$set": {
                    "staff_count": conversation.staff_count,
                    "client_count": conversation.client_count,
                    "client_activity_ms": conversation.client_activity_ms,
                    "client_last_message_id": conversation.client_last_message_id,
                    "skipped_staff": list(conversation.skipped_staff),
                    "skipped_client": list(conversation.skipped_client),
                }
            },
        )

    async def _recipients(
        self, conversation: Conversation, author_id: str, kind: MessageKind
    ) -> list[str]:
        """Who is notified of a new message: the participants but its author and those who
        muted the conversation; for a note, only practitioners; for an event, nobody."""
        if kind is MessageKind.EVENT:
            return []
        muted = set(conversation.muted_by)
        others = [p for p in conversation.participant_ids if p != author_id and p not in muted]
        if kind is MessageKind.NOTE and others:
            users = await self.directory.users_by_ids(others)
            others = [p for p in others if p in users and may_read_kind(users[p], kind)]
        return others

    async def record_change(
        self,
        viewer: User,
        conversation: Conversation,
        update: Document,
        event: ConversationEvent,
        condition: Document | None = None,
    ) -> Conversation | None:
        """Apply a lifecycle change (`update`, a MongoDB update without `$inc`) and record its
        timeline event: the change and the event's number in one update, then the event.
        `condition` narrows the update (a participant not added yet...); None when it did not
        match. Publishes the event and `ConversationChanged`."""
        now = clock.now()
        message_id = new_id()
        changes = {**update, "$inc": {"message_count": 1}}
        await self._complete_counters(conversation)
        found = await self.db.conversations.find_one_and_update(
            {**conversation_key(conversation), **(condition or {})},
            changes,
            return_document=ReturnDocument.AFTER,
        )
        if found is None:
            return None
        updated = Conversation.from_doc(found)
        doc = new_message_doc(
            message_id=message_id,
            firm_id=updated.firm_id,
            conversation_id=updated.id,
            seq=updated.message_count,
            author_id=viewer.id,
            html="",
            text="",
            attachment_ids=[],
            created_at=now,
            recipients=[],
            client_message_id=None,
            kind=MessageKind.EVENT,
            staff_n=updated.staff_count,
            client_n=updated.client_count,
            event=event,
        )
        await self._insert_reply(doc, updated)
        # The change first: a subscriber who lost access must not be shown the event of it.
        self.publisher.emit(ConversationChanged(updated))
        await self._after_message(Message.from_doc(doc), [], updated=updated)
        return updated

    async def _insert_reply(self, doc: Document, conversation: Conversation) -> Message:
        """Store a reply whose number is taken; a number that ends up unused is recorded."""
        message_id = doc["_id"]
        try:
            await self.db.messages.insert_one(doc)
        except DuplicateKeyError:
            # A retry on another process stored it first: our `seq` stays unused (history
            # tolerates gaps), and the conversation must not name a message never stored.
            await self._forget_failed(conversation, Message.from_doc(doc))
            await self.attachments.release(message_id)
            key = doc.get("client_message_id")
            existing = await self._message_by_client_id_of(doc["author_id"], key) if key else None
            if existing is None:
                raise
            return await self._answer_retry(existing, conversation)
        except BaseException:
            # Not stored (database error, time-out, cancelled): the number must not count as
            # an unread message. Best effort, shielded: the database may be what failed.
            await _shielded(self._forget_failed(conversation, Message.from_doc(doc)))
            await _shielded(self.attachments.release(message_id))
            raise
        if doc["attachment_ids"]:
            await self.attachments.confirm(message_id)
        return Message.from_doc(doc)

    async def _after_message(
        self,
        message: Message,
        recipients: list[str],
        created: Conversation | None = None,
        updated: Conversation | None = None,
    ) -> None:
        """Notify the participants and publish the events (the author's mark has moved)."""
        conversation = created or updated
        company_id = conversation.company_id if conversation is not None else None
        notifications = await self.notifications.fan_out(message, recipients, company_id)
        if created is not None:
            self.publisher.emit(ConversationCreated(created))
        self.publisher.emit(MessageAdded(message, updated))
        for notification in notifications:
            self.publisher.emit(NotificationAdded(notification, message, conversation))

    async def mark_read(self, viewer: User, conversation: Conversation) -> Conversation:
        """Move the viewer's read mark to the newest message and mark the notifications of the
        messages it passed read (SPEC §19: badges and lists agree)."""
        require_readable(viewer, conversation)
        await asyncio.gather(
            self._move_read_mark(
                viewer.id,
                conversation.id,
                conversation.message_count,
                conversation.staff_count,
                conversation.client_count,
            ),
            self.notifications.mark_conversation_read(
                viewer, conversation.id, conversation.message_count
            ),
        )
        self.publisher.emit(
            ReadStateChanged(viewer.id, conversation.id, conversation.message_count)
        )
        return conversation

    # -- reading -------------------------------------------------------------------------

    async def get(self, viewer: User, conversation_id: str) -> Conversation:
        """The conversation as stored now, if the viewer may read it (else NOT_FOUND)."""
        return await fetch_readable(self.db, viewer, conversation_id)

    async def inbox(
        self,
        viewer: User,
        *,
        first: int | None = None,
        after: str | None = None,
        kind: ConversationType | None = None,
        company_id: str | None = None,
        unread_only: bool = False,
        status: ConversationStatus | None = None,
        assignee_id: str | None = None,
        archived: bool = False,
    ) -> Page[Conversation]:
        """Readable conversations by the viewer's audience's last activity, newest first;
        `archived`: the ones the viewer archived instead of the others."""
        size = page_size(first, "first")
        narrowing: Document = {}
        if kind is not None:
            narrowing["type"] = {"$eq": kind.value}
        if company_id is not None:
            narrowing["company_id"] = {"$eq": parse_id(company_id, "company")}
        if status is ConversationStatus.OPEN:  # documents written before statuses are OPEN
            others = [s.value for s in ConversationStatus if s is not ConversationStatus.OPEN]
            narrowing["status"] = {"$nin": others}
        elif status is not None:
            narrowing["status"] = {"$eq": status.value}
        if assignee_id is not None:
            narrowing["assignee_id"] = {"$eq": parse_id(assignee_id, "assignee")}
        archived_field = ARCHIVED_FIELDS[audience_of(viewer)]
        narrowing[archived_field] = viewer.id if archived else {"$nin": [viewer.id]}
        cursor = parse_activity_cursor(after, "after") if after is not None else None
        if not unread_only:
            items = await readable_in_activity_order(self.db, viewer, narrowing, cursor, size + 1)
        else:
            items = await self._scan_unread(viewer, narrowing, cursor, size + 1)
        return Page(
            items=items[:size], has_next_page=len(items) > size, has_previous_page=after is not None
        )

    async def history(
        self,
        viewer: User,
        conversation: Conversation,
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Page[Message]:
        """A page of a conversation's messages, oldest first; the newest page by default."""
        return await history.read_page(
            self.db, HistoryRequest(conversation, viewer, first, after, last, before)
        )

    async def history_pages(
        self, requests: Sequence[HistoryRequest], in_flight: asyncio.Semaphore
    ) -> list[Page[Message] | ApiError]:
        """Pages of many conversations (see `history`), in request order, with at most
        `in_flight` queries at once."""
        return await history.read_pages(self.db, requests, in_flight)

    async def eligible_participants(
        self, viewer: User, kind: ConversationType, company: Company | None, search: str | None
    ) -> list[User]:
        """Exactly the users the viewer may designate for such a conversation, by name
        (`company` is one the viewer may see)."""
        validation.check_company_for_kind(kind, company)
        company_id = company.id if company is not None else None
        query: Document = {
            "$and": [
                eligible_participants_filter(viewer, kind, company_id),
                self._user_search(search),
            ]
        }
        docs = (
            await self.db.users.find(query)
            .sort("name_lower", 1)
            .limit(MAX_ELIGIBLE_RESULTS)
            .to_list()
        )
        return [User.from_doc(doc) for doc in docs]

    async def unread_counts(self, viewer: User, conversations: list[Conversation]) -> list[int]:
        """Messages after the viewer's read mark that the viewer did not write, per
        conversation, from the read marks alone: sending moves the author's own mark to the
        message, so every message after a mark is someone else's, and the viewer's audience's
        counter numbers every stored message it counts but the ordinals a failed write left
        unused. Notes count for practitioners only, timeline events for nobody (`models`).

        Asked together with whatever other viewers ask meanwhile (one query per batch): the
        inbox subscribers a message wakes in this process read their marks at once, not one
        query each (issue 16)."""
        return await self._unread_loader().load_many([(viewer, c) for c in conversations])

    def _unread_loader(self) -> DataLoader[tuple[User, Conversation], int]:
        # One per event loop: a loader schedules its batches on the loop it first ran in.
        loop = asyncio.get_running_loop()
        if self._unread_batches is None or self._unread_batches.loop is not loop:
            self._unread_batches = DataLoader(self._unread_batch, cache=False, loop=loop)
        return self._unread_batches

    async def _unread_batch(self, wanted: list[tuple[User, Conversation]]) -> list[int]:
        marks = await marks_by_pair(self.db, {(v.id, c.id) for v, c in wanted})
        counts = []
        for viewer, conversation in wanted:
            audience = audience_of(viewer)
            mark = marks.get((viewer.id, conversation.id))
            # Marks written before notes have no audience ordinals: `seq` counted everything.
            read = 0 if mark is None else int(mark.get(_AUDIENCE_FIELDS[audience][2], mark["seq"]))
            counts.append(
                unread_after(conversation.count(audience), conversation.skipped(audience), read)
            )
        return counts

    async def unread_summary(self, viewer: User) -> UnreadSummary:
        """The viewer's badges in a bounded number of commands whatever its inbox: the counters
        of every readable conversation (one query per branch of the access rule, projected),
        all of the viewer's read marks, and a count of its unread notifications."""
        audience = audience_of(viewer)
        counter, skipped, ordinal = _AUDIENCE_FIELDS[audience]
        projection = {"message_count": 1, "skipped_seqs": 1, counter: 1, skipped: 1}
        branches = [
            self.db.conversations.find(branch, projection).batch_size(SUMMARY_BATCH).to_list()
            for branch in readable_branches(viewer)
        ]
        marks_query = self.db.read_marks.find(
            {"user_id": {"$eq": viewer.id}}, {"conversation_id": 1, "seq": 1, ordinal: 1}
        ).batch_size(SUMMARY_BATCH)
        unread_notifications = {**readable_notifications_filter(viewer), "unread": {"$eq": 1}}
        *found, mark_docs, notifications = await asyncio.gather(
            *branches,
            marks_query.to_list(),
            self.db.notifications.count_documents(unread_notifications),
        )
        # Documents written before notes have no audience fields: every message then counted
        # for everyone (`models.Conversation.from_doc` reads them the same way).
        marks = {doc["conversation_id"]: int(doc.get(ordinal, doc["seq"])) for doc in mark_docs}
        counters = {doc["_id"]: doc for docs in found for doc in docs}  # branches overlap
        unread = [
            unread_after(
                int(doc.get(counter, doc.get("message_count", 0))),
                {int(n) for n in doc.get(skipped, doc.get("skipped_seqs", ()))},
                marks.get(conversation_id, 0),
            )
            for conversation_id, doc in counters.items()
        ]
        return UnreadSummary(
            conversations=sum(1 for n in unread if n > 0),
            messages=sum(unread),
            notifications=notifications,
        )

    async def read_marks_of(
        self, conversations: Sequence[Conversation]
    ) -> dict[str, dict[str, ReadMark]]:
        """The read marks of the participants of `conversations`, per conversation and user."""
        return await marks_of_participants(
            self.db, [(c.id, c.participant_ids) for c in conversations]
        )

    async def last_readable_at(
        self, viewer: User, conversation_id: str, seq: int
    ) -> Message | None:
        """The newest message the viewer may read at or before `seq` (a receipt's last read
        message: a client never learns of a note through it)."""
        docs = (
            await self.db.messages.find(
                {
                    "conversation_id": {"$eq": conversation_id},
                    "seq": {"$lte": seq},
                    **readable_messages_filter(viewer),
                }
            )
            .sort("seq", -1)
            .limit(1)
            .to_list()
        )
        return Message.from_doc(docs[0]) if docs else None

    async def messages_by_ids(self, firm_id: str, ids: list[str]) -> dict[str, Message]:
        """Messages of a firm by id alone (an edit or a deletion names nothing else); the
        caller checks access on their conversations."""
        docs = await self.db.messages.find(
            {"_id": {"$in": ids}, "firm_id": {"$eq": firm_id}}
        ).to_list()
        return {doc["_id"]: Message.from_doc(doc) for doc in docs}

    async def messages_after(
        self,
        viewer: User,
        conversation_id: str,
        seq: int,
        limit: int,
        until: int | None = None,
    ) -> list[Message]:
        """Stored messages the viewer may read with `seq` after `seq` (and before `until`),
        oldest first."""
        seq_range: Document = {"$gt": seq}
        if until is not None:
            seq_range["$lt"] = until
        docs = (
            await self.db.messages.find(
                {
                    "conversation_id": {"$eq": conversation_id},
                    "seq": seq_range,
                    **readable_messages_filter(viewer),
                }
            )
            .sort("seq", 1)
            .limit(limit)
            .to_list()
        )
        return [Message.from_doc(d) for d in docs]

    async def conversations_by_ids(self, ids: Iterable[str]) -> dict[str, Conversation]:
        docs = await self.db.conversations.find({"_id": {"$in": list(ids)}}).to_list()
        return {doc["_id"]: Conversation.from_doc(doc) for doc in docs}

    async def messages_by_refs(self, refs: Iterable[MessageRef]) -> dict[MessageRef, Message]:
        """Messages by (conversation id, message id): the conversation, the shard key, lets a
        sharded cluster ask only the shards that hold them."""
        refs = list(refs)
        query = {
            "conversation_id": {"$in": sorted({c for c, _ in refs})},
            "_id": {"$in": [m for _, m in refs]},
        }
        docs = await self.db.messages.find(query).to_list()
        return {(doc["conversation_id"], doc["_id"]): Message.from_doc(doc) for doc in docs}

    # -- helpers -------------------------------------------------------------------------

    async def eligible_users(
        self,
        viewer: User,
        kind: ConversationType,
        company_id: str | None,
        ids: list[str],
        field: str = "participantIds",
    ) -> list[User]:
        """The designated users, each checked against the eligibility rule of the policy.

        An unknown id, another firm's user and an ineligible user answer the same NOT_FOUND."""
        found: dict[str, User] = {}
        wanted = [i for i in ids if is_id(i)]
        if wanted:
            query = {
                "$and": [
                    {"_id": {"$in": wanted}},
                    eligible_participants_filter(viewer, kind, company_id),
                ]
            }
            found = {doc["_id"]: User.from_doc(doc) async for doc in self.db.users.find(query)}
        for participant_id in ids:
            if participant_id not in found:
                raise NotFound(
                    f"participant {participant_id!r} not found among the users you may designate",
                    field=field,
                )
        return [found[i] for i in ids]

    async def _claim_attachments(
        self, viewer: User, attachment_ids: list[str], message_id: str, conversation_id: str
    ) -> None:
        """Attach the viewer's own pending uploads to the new message, all or none.

        Another user's upload, one already attached and an unknown id answer the same NOT_FOUND.
        """
        if not await self.attachments.claim(viewer, attachment_ids, message_id, conversation_id):
            raise NotFound(
                "attachment not found: attach your own uploads, each to one message only",
                field="attachmentIds",
            )

    async def _filenames(self, attachment_ids: list[str]) -> list[str]:
        """The filenames of claimed attachments, in order, for the search fields (no query
        for a message without attachments)."""
        if not attachment_ids:
            return []
        found = await self.attachments.by_ids(attachment_ids)
        return [found[i].filename for i in attachment_ids if i in found]

    @staticmethod
    def _user_search(search: str | None) -> Document:
        by_name = search_filter("name", search)
        if not by_name:
            return {}
        return {"$or": [by_name, search_filter("email", search)]}

    async def stop_counting(self, conversation: Conversation, message: Message) -> None:
        """`message` took its numbers and no longer counts as unread for anyone (it was deleted;
        or its write failed): record its `seq` and the ordinals its kind took as unused."""
        skipped: Document = {"skipped_seqs": message.seq}
        if counts_for(message.kind, Audience.STAFF):
            skipped["skipped_staff"] = message.staff_n
        if counts_for(message.kind, Audience.CLIENT):
            skipped["skipped_client"] = message.client_n
        await self.db.conversations.update_one(conversation_key(conversation), {"$push": skipped})

    async def _forget_failed(self, conversation: Conversation, message: Message) -> None:
        """A message whose write failed: it stops counting, and each audience's last message
        points at its newest stored one again, with its time. (If this process dies first, the
        crash recovery does the same: `recovery.py`.) A deleted message keeps its place as the
        last one: readers see it there as deleted."""
        await self.stop_counting(conversation, message)
        fields = {
            Audience.STAFF: ("last_message_id", "last_activity_ms"),
            Audience.CLIENT: ("client_last_message_id", "client_activity_ms"),
        }
        for audience, (last_id, activity) in fields.items():
            if not counts_for(message.kind, audience):
                continue
            latest = await newest_message(self.db, conversation.id, audience, before=message.seq)
            if latest:
                await self.db.conversations.update_one(
                    {**conversation_key(conversation), last_id: {"$eq": message.id}},
                    {"$set": {last_id: latest["_id"], activity: latest["created_ms"]}},
                )

    async def _conversation_by_client_id(
        self, viewer: User, client_message_id: str
    ) -> Conversation | None:
        """The conversation a retried createConversation already made, if the viewer may still
        read it (a retry must not reveal what the viewer lost access to)."""
        doc = await self.db.conversations.find_one(_created_with_key(viewer, client_message_id))
        if doc is None:
            return None
        conversation = Conversation.from_doc(doc)
        if not can_read(viewer, conversation):
            raise NotFound("conversation not found")
        return conversation

    async def message_by_client_id(self, viewer: User, client_message_id: str) -> Message | None:
        """The viewer's message stored with this idempotency key, if any."""
        doc = await self._message_by_client_id_of(viewer.id, client_message_id)
        return Message.from_doc(doc) if doc else None

    async def _message_by_client_id(self, viewer: User, client_message_id: str) -> Document | None:
        return await self._message_by_client_id_of(viewer.id, client_message_id)

    async def _message_by_client_id_of(
        self, author_id: str, client_message_id: str
    ) -> Document | None:
        return await self.db.messages.find_one(
            {"author_id": {"$eq": author_id}, "client_message_id": {"$eq": client_message_id}}
        )

    @staticmethod
    def _same_conversation(message: Message, conversation: Conversation) -> Message:
        if message.conversation_id != conversation.id:
            raise BadUserInput(
                "clientMessageId was already used for a message of another conversation",
                field="clientMessageId",
            )
        return message

    async def _move_read_mark(
        self, user_id: str, conversation_id: str, seq: int, staff_n: int, client_n: int
    ) -> None:
        """Move the mark forward only: a late, older update never moves it back."""
        await self._read_mark_writes.submit((user_id, conversation_id, seq, staff_n, client_n))

    async def start_read_mark(self, user_id: str, conversation: Conversation) -> None:
        """An added participant's mark starts at the conversation's counters now."""
        await self._move_read_mark(
            user_id,
            conversation.id,
            conversation.message_count,
            conversation.staff_count,
            conversation.client_count,
        )

    async def _scan_unread(
        self, viewer: User, narrowing: Document, cursor: ActivityKey | None, wanted: int
    ) -> list[Conversation]:
        """Readable conversations with unread messages, walking the inbox in batches (the read
        marks live in their own collection, so the filter cannot run inside the query)."""
        found: list[Conversation] = []
        while len(found) < wanted:
            batch = await readable_in_activity_order(
                self.db, viewer, narrowing, cursor, UNREAD_SCAN_BATCH
            )
            counts = await self.unread_counts(viewer, batch) if batch else []
            found.extend(c for c, n in zip(batch, counts, strict=True) if n > 0)
            if len(batch) < UNREAD_SCAN_BATCH:
                break
            cursor = (batch[-1].activity_ms(audience_of(viewer)), batch[-1].id)
        return found[:wanted]


_AUDIENCE_FIELDS = {
    Audience.STAFF: ("staff_count", "skipped_staff", "staff_n"),
    Audience.CLIENT: ("client_count", "skipped_client", "client_n"),
}
"""Per audience: the conversation's counter, its skipped ordinals, and a read mark's ordinal."""


def unread_after(count: int, skipped: Iterable[int], mark: int) -> int:
    """Messages after a read mark at ordinal `mark`: every ordinal the audience's counter handed
    out after it, but those no message holds (failed writes, deleted messages)."""
    after_mark = sum(1 for n in set(skipped) if n > mark)
    return max(count - mark - after_mark, 0)


async def _shielded(cleanup: Awaitable[None]) -> None:
    """Best effort, through a cancellation, after a failure: the database may be what failed
    (the attachment cleanup then releases the claim later)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(cleanup)


def conversation_key(conversation: Conversation) -> Document:
    """The filter of a write to one conversation: its id and its shard key (`firm_id`,
    `created_by`; `graphql_api/sharding.py`), so that a sharded cluster routes it to one shard."""
    return {
        "_id": conversation.id,
        "firm_id": {"$eq": conversation.firm_id},
        "created_by": {"$eq": conversation.created_by},
    }


def _created_with_key(viewer: User, client_message_id: str) -> Document:
    """The conversation the viewer created with this retry key (`creator_client_message_id`)."""
    return {
        "firm_id": {"$eq": viewer.firm_id},
        "created_by": {"$eq": viewer.id},
        "client_message_id": {"$eq": client_message_id},
    }


__all__ = ["DEFAULT_HISTORY_PAGE", "Conversations", "HistoryRequest", "MessageRef"]
