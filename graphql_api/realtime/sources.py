"""Where events come from: this process's own writes, and MongoDB change streams.

The services publish their own writes to this process's hub at once. With change streams (a
replica set, or the embedded server), every process also watches `messages`, `conversations` and
`users` and publishes what any process wrote, so a subscriber on process B sees a message sent
through process A; the hub drops the copy of what this process already published. The
notifications of a message are derived from the message's `recipients` rather than watched: one
event per message instead of one per recipient. An inserted document is published from the copy
its change carries, which is the document as inserted (the embedded server's extended-JSON dates
are put back), and read by id only when the change carries none; a message's conversation (for
the inbox and notifications) is the newest state seen on the `conversations` stream when it
already counts the message, else read. A process thus reads nothing for most of another
process's messages, where it used to read two documents one after the other (issue 16: at 20
messages a second, another process's subscribers fell tens of seconds behind). Without change
streams (a standalone MongoDB) a warning at start says that other processes' events are not
seen.

The embedded server ignores `maxAwaitTimeMS` and answers every `getMore` at once (about 500 a
second per stream, a quarter of a core each side), so an empty answer is followed by a pause:
`BUSY_POLL_SECONDS` right after an event, doubling up to `IDLE_POLL_SECONDS` while nothing
comes. Busy streams thus see another process's events within about 10 ms, and idle ones cost
little. Each poll is not free on the embedded server (it also prunes its event table: about 40 %
of its time under a 2-worker send load with 2 ms pauses), hence not shorter pauses.

Nothing is published for this process's own writes (already published, the hub remembers their
keys) nor for documents whose topics have no subscriber here (a bulk import would otherwise cost
a query per document where a read is needed).

A lifecycle change (SPEC §13) also inserts its timeline event, a message of kind EVENT, and
that insert is published as `ConversationChanged` (with the conversation re-read) followed by
the event itself; the update of the conversation, seen below, then carries the same key.

Updates of messages and conversations are watched too, for `messageUpdated` and
`conversationUpdated`: most of them (a message's fan-out flag, a conversation's counter) change
nothing those show, which the change's document tells without a query (a message's `version`,
a conversation's subject, participants, status and assignee, keyed like the hub's events); the
rest are re-read only when someone here listens to the conversation. A conversation this process
has never seen in its current state (created before the process started) may thus be delivered
once unchanged. Read marks are published from the change itself (ids and a number).

The `users` stream reports updates, replaces and deletes (not inserts: a user nobody has read
yet is in no cache). Each evicts the user from this process's user cache, then publishes
`UserChanged` so that live subscriptions re-read their viewer: the cache serves users only while
this stream is open (`directory/user_cache.py`). The `companies` stream does the same for the
company cache, and publishes nothing.

The re-read filters by the change's `documentKey`, which holds the shard key on a sharded
cluster: one shard answers.

Resuming: each stream keeps the driver's resume token (`stream.resume_token`), which moves on
with the server's post-batch position even while nothing happens, and reopens after it
(`start_after`) when the driver could not resume by itself (the database was away longer than
server selection waits), backing off up to `MAX_RETRY_DELAY_SECONDS`. When the position is gone
(the oplog rolled over it: `ChangeStreamHistoryLost`, 286), the stream restarts from now: events
were lost, so every subscriber of this process gets a `Resync` and re-reads what it shows, and
the `on_resync` hooks (caches) are told first; a stale position is never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from typing import Any

import pymongo
from bson import json_util
from pymongo.errors import OperationFailure, PyMongoError

from graphql_api.conversations.models import Conversation, Message, MessageKind
from graphql_api.database import Db, Document
from graphql_api.directory.user_cache import CompanyCache, UserCache
from graphql_api.notifications.models import Notification
from graphql_api.notifications.service import notification_docs
from graphql_api.realtime.events import (
    ConversationChanged,
    ConversationCreated,
    Event,
    MessageAdded,
    MessageUpdated,
    NotificationAdded,
    ReadStateChanged,
    Resync,
    Topic,
    UserChanged,
    conversation_state_key,
    conversation_topic,
    event_key,
    firm_topic,
    message_version_key,
    user_topic,
)
from graphql_api.realtime.hub import EventHub

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 1.0
MAX_RETRY_DELAY_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 5.0
BUSY_POLL_SECONDS = 0.01
IDLE_POLL_SECONDS = 0.05
STOP_TIMEOUT_SECONDS = 2.0
KNOWN_CONVERSATIONS = 5_000
"""Conversations whose newest state seen on the `conversations` stream is kept (see
`_publish_message`)."""
_DATES = json_util.JSONOptions(tz_aware=True, tzinfo=UTC)


class Publisher:
    """What the services call after a write: the event goes to this process's hub at once."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    def emit(self, event: Event) -> None:
        self.hub.publish(event)
        if isinstance(event, ConversationCreated):
            # Its first state: later updates that keep it (new messages) change nothing shown.
            self.hub.remember(ConversationChanged(event.conversation).key() or "")


# The position of a stream is gone: its token fell off the oplog (ChangeStreamHistoryLost), the
# server cannot resume from it (ChangeStreamFatalError) or does not know it (InvalidResumeToken).
POSITION_LOST_CODES = {286, 280, 260}
# What a standalone server answers: "$changeStream is only supported on replica sets".
NO_CHANGE_STREAM_CODES = {40573}
# Errors of a deployment that cannot answer right now (an election, a shutdown, a network
# problem between members): the question is asked again later.
# (50: the probe's own deadline ran out on the server.)
TRANSIENT_CODES = {6, 7, 50, 63, 89, 91, 150, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}


async def change_streams_supported(db: Db) -> bool | None:
    """Whether this deployment offers change streams, found by opening one (the embedded server
    reports itself as standalone although it supports them, SPEC §11). None when the
    deployment could not answer (no primary during an election, the network): ask again."""
    try:
        # Bounded (a server that accepts the connection may still never answer), by the URI's
        # own `timeoutMS` when it sets one.
        with pymongo.timeout(db.client.options.timeout or PROBE_TIMEOUT_SECONDS):
            async with await db.conversations.watch([], max_await_time_ms=1):
                return True
    except OperationFailure as exc:
        if exc.code in NO_CHANGE_STREAM_CODES:
            return False
        if exc.code in TRANSIENT_CODES or exc.has_error_label("ResumableChangeStreamError"):
            log.warning("change-stream probe failed (%s); asking again", exc)
            return None
        log.warning("change streams refused (%s): treating them as unsupported", exc)
        return False
    except PyMongoError as exc:
        log.warning("change-stream probe got no answer (%s); asking again", exc)
        return None


_Loader = Callable[[Document], Event]

# Per collection: the changes watched, and the event a re-read inserted document makes. Updates
# of messages (edits, deletions), conversations (SPEC §13 changes) and read marks are mapped by
# `_publish_update`.
_INSERTS_AND_UPDATES = ["insert", "update", "replace"]
_USER_CHANGES = ["update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate"]
_COLLECTIONS: dict[str, tuple[list[str], _Loader]] = {
    "messages": (_INSERTS_AND_UPDATES, lambda doc: MessageAdded(Message.from_doc(doc))),
    "conversations": (
        _INSERTS_AND_UPDATES,
        lambda doc: ConversationCreated(Conversation.from_doc(doc)),
    ),
    "read_marks": (_INSERTS_AND_UPDATES, lambda doc: _read_state_changed(doc)),
    "users": (_USER_CHANGES, lambda doc: UserChanged(doc["_id"])),
    # Only evicts from the company cache (`_publish`): nothing is published.
    "companies": (_USER_CHANGES, lambda doc: UserChanged(doc["_id"])),
}


def _read_state_changed(doc: Document) -> ReadStateChanged:
    return ReadStateChanged(str(doc["user_id"]), str(doc["conversation_id"]), int(doc["seq"]))


def _topics_of(name: str, document: Document | None) -> list[Topic] | None:
    """The topics an inserted document's events will go to, read from the change's plain string
    fields (the embedded server mangles its dates, not its strings); None when unknown."""
    if not isinstance(document, dict):
        return None
    try:
        if name == "messages":
            return [
                conversation_topic(str(document["conversation_id"])),
                firm_topic(str(document["firm_id"])),
                *(user_topic(str(user_id)) for user_id in document.get("recipients", ())),
            ]
        if name == "conversations":  # its first message's notifications come with it
            creator = document.get("created_by")
            return [
                firm_topic(str(document["firm_id"])),
                *(user_topic(str(u)) for u in document.get("participant_ids", ()) if u != creator),
            ]
    except (KeyError, TypeError):
        return None
    return None


def _as_stored(document: object, key: str) -> Document | None:
    """The document a change carries, as the database stores it; None when it carries none.
    MongoDB sends it exactly; the embedded server sends its dates as extended JSON
    (`{"$date": "..."}`) and our string ids as ObjectIds, which are put back."""
    if not isinstance(document, dict):
        return None
    restored = _restore_dates(document)
    restored["_id"] = key
    return restored


def _restore_dates(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$date" in value:
            return json_util.object_hook(value, _DATES)
        return {k: _restore_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_dates(v) for v in value]
    return value


async def _no_load(user_id: str) -> None:
    """The loader of a source's cache that nobody reads (a source built without one)."""
    return None


class ChangeStreamSource:
    """Watches the product's collections and publishes their events to the hub."""

    def __init__(
        self,
        db: Db,
        hub: EventHub,
        users: UserCache | None = None,
        companies: CompanyCache | None = None,
    ) -> None:
        self.db = db
        self.hub = hub
        # The process's user cache, which serves only while the users stream is open.
        self.users = users if users is not None else UserCache(_no_load, max_users=0)
        # Likewise the company cache, while the companies stream is open.
        self.companies = companies if companies is not None else CompanyCache(_no_load, max_users=0)
        self._tasks: list[asyncio.Task[None]] = []
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        """The newest state of recently changed conversations, from their stream."""
        self.ready = asyncio.Event()
        self._opened: set[str] = set()
        self.on_resync: list[Callable[[str], None]] = []
        """Called with the collection's name when its events were lost (before subscribers
        are told): caches of its documents must forget them."""

    def start(self) -> None:
        for name, (operation, to_event) in _COLLECTIONS.items():
            self._tasks.append(
                asyncio.create_task(
                    self._watch(name, operation, to_event), name=f"change-stream-{name}"
                )
            )

    async def stop(self) -> None:
        if not self._tasks:
            return
        self.users.stop_serving()
        self.companies.stop_serving()
        for task in self._tasks:
            task.cancel()
        # Bounded: a watcher cancelled inside PyMongo's server selection may never finish
        # (seen right after the database came back); shutdown must not wait on it forever.
        await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_SECONDS)

    async def _watch(self, name: str, operations: list[str], to_event: _Loader) -> None:
        pipeline = [{"$match": {"operationType": {"$in": operations}}}]
        token: Mapping[str, Any] | None = None
        delay = RETRY_DELAY_SECONDS
        while True:
            try:
                # `updateLookup`: an update's event carries the document as it is now (the
                # embedded server always sends it), to tell an edit from a message's fan-out
                # flag without a query.
                async with await self.db[name].watch(
                    pipeline, start_after=token, full_document="updateLookup"
                ) as stream:
                    self._mark_open(name)
                    try:
                        delay = RETRY_DELAY_SECONDS
                        pause = IDLE_POLL_SECONDS
                        while True:
                            change = await stream.try_next()
                            if change is not None:
                                await self._publish(name, change, to_event)
                            # After publishing: a change whose publishing failed comes again.
                            token = stream.resume_token or token
                            if change is None:
                                await asyncio.sleep(pause)
                                pause = min(pause * 2, IDLE_POLL_SECONDS)
                            else:
                                pause = BUSY_POLL_SECONDS
                    finally:
                        self._mark_closed(name)
            except asyncio.CancelledError:
                raise
            except OperationFailure as exc:
                if exc.code in POSITION_LOST_CODES:
                    log.error(
                        "change stream on %s lost its position (%s): restarting from now; "
                        "subscribers re-read what they show",
                        name,
                        exc,
                    )
                    token = None
                    self._resynchronise(name)
                else:
                    log.warning("change stream on %s failed (%s); reopening", name, exc)
            except PyMongoError as exc:
                log.warning("change stream on %s interrupted (%s); reopening", name, exc)
            except Exception:
                # A change that could not be published must not end the watch for good (users
                # would then be cached with nothing to evict them).
                log.exception("change stream on %s failed; reopening", name)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)

    def _mark_open(self, name: str) -> None:
        if name == "users":
            self.users.serve()
        if name == "companies":
            self.companies.serve()
        self._opened.add(name)
        if len(self._opened) >= len(_COLLECTIONS):
            self.ready.set()

    def _mark_closed(self, name: str) -> None:
        if name == "users":
            # Other processes' changes to users no longer reach this one: keep none.
            self.users.stop_serving()
        if name == "companies":
            self.companies.stop_serving()

    def _resynchronise(self, name: str) -> None:
        """Events of `name` were lost: caches forget, then every subscriber here re-reads."""
        if name == "users":
            self.users.clear()
        if name == "companies":
            self.companies.clear()
        if name == "conversations":
            self._conversations.clear()
        for forget in self.on_resync:
            forget(name)
        for topic in self.hub.topics():
            self.hub.publish(Resync(topic))

    async def _publish(self, name: str, change: Document, to_event: _Loader) -> None:
        key = change.get("documentKey", {}).get("_id")
        if name == "users":
            self._user_changed(None if key is None else str(key))
            return
        if name == "companies":
            if key is None:
                self.companies.clear()
            else:
                self.companies.evict(str(key))
            return
        if key is None:
            return
        key = str(key)  # the embedded server answers our string ids as ObjectIds here
        if name == "read_marks":
            # The event is the mark's ids and number: strings and an integer, which the change
            # carries intact (no re-read).
            document = change.get("fullDocument")
            if isinstance(document, dict) and "seq" in document:
                self.hub.publish(_read_state_changed(document))
            return
        stored = _as_stored(change.get("fullDocument"), key)
        if name == "conversations" and stored is not None:
            self._note_conversation(stored)
        if change.get("operationType") != "insert":
            await self._publish_update(name, key, change)
            return
        if self.hub.has_seen(event_key(name, key)):
            return
        topics = _topics_of(name, change.get("fullDocument"))
        if topics is not None and not any(self.hub.has_listeners(t) for t in topics):
            return  # nobody here listens: a bulk import must not cost one query per document
        event, doc = self._inserted(stored, to_event)
        if event is None:
            # The change's documentKey: `_id` plus the shard key on a sharded cluster.
            doc = await self.db[name].find_one({**change["documentKey"], "_id": key})
            if doc is None:
                return
            event = to_event(doc)
        if isinstance(event, MessageAdded):
            await self._publish_message(event, doc)
        elif isinstance(event, ConversationCreated):
            await self._publish_conversation(event)
        else:
            self.hub.publish(event)

    @staticmethod
    def _inserted(stored: Document | None, to_event: _Loader) -> tuple[Event | None, Document]:
        """The event of an inserted document, from the copy its change carries (the document
        as inserted: no re-read); None when the change carries no usable copy."""
        if stored is None:
            return None, {}
        try:
            return to_event(stored), stored
        except (KeyError, TypeError, ValueError):
            return None, {}

    def _note_conversation(self, document: Document) -> None:
        """Keep the newest state of a conversation seen on its stream (every message and
        change numbers it: a higher `message_count` is newer)."""
        try:
            conversation = Conversation.from_doc(document)
        except (KeyError, TypeError, ValueError):
            return
        known = self._conversations.get(conversation.id)
        if known is None or known.message_count <= conversation.message_count:
            self._conversations[conversation.id] = conversation
        self._conversations.move_to_end(conversation.id)
        if len(self._conversations) > KNOWN_CONVERSATIONS:
            self._conversations.popitem(last=False)

    async def _conversation_at(self, conversation_id: str, seq: int) -> Conversation | None:
        """The conversation as stored once message `seq` was numbered: the newest state seen on
        its stream when it is that recent (the number is taken before the message is stored,
        but the two streams are read apart), else read."""
        known = self._conversations.get(conversation_id)
        if known is not None and known.message_count >= seq:
            return known
        doc = await self.db.conversations.find_one({"_id": conversation_id})
        return None if doc is None else Conversation.from_doc(doc)

    async def _publish_update(self, name: str, key: str, change: Document) -> None:
        """An updated message or conversation: published when it is a change readers are shown
        (a message's new version; a conversation's subject, participants, status or assignee),
        this process has not published it, and someone here listens to its conversation."""
        document = change.get("fullDocument")
        if not isinstance(document, dict):
            return
        try:
            if name == "messages":
                version = int(document.get("version") or 0)
                if version == 0:
                    return  # not rewritten: its fan-out flag, the recovery
                event_id = message_version_key(key, version)
                conversation_id = str(document["conversation_id"])
            else:
                event_id = conversation_state_key(
                    key,
                    document["subject"],
                    document.get("participant_ids", ()),
                    document.get("status"),
                    document.get("assignee_id"),
                )
                conversation_id = key
        except (KeyError, TypeError, ValueError):
            return
        if self.hub.has_seen(event_id) or not self.hub.has_listeners(
            conversation_topic(conversation_id)
        ):
            return
        doc = await self.db[name].find_one({**change["documentKey"], "_id": key})
        if doc is None:
            return
        if name == "messages":
            self.hub.publish(MessageUpdated(Message.from_doc(doc)))
        else:
            self.hub.publish(ConversationChanged(Conversation.from_doc(doc)))

    def _user_changed(self, user_id: str | None) -> None:
        """A user was updated, replaced or deleted (by any process): evicted from the cache
        first, so that the subscriptions the event wakes read it anew. A change without a user
        (the collection dropped or renamed) empties the cache."""
        if user_id is None:
            self.users.clear()
            return
        self.users.evict(user_id)
        self.hub.publish(UserChanged(user_id))

    async def _publish_message(self, event: MessageAdded, doc: Document) -> None:
        """A message, and the notifications it implies: those are derived from the message (its
        `recipients`, deterministic ids) instead of being watched, which spares every process
        one change-stream event per recipient of every message."""
        if event.message.seq > 1:
            # Once here for every inbox subscriber of this process.
            conversation = await self._conversation_at(
                event.message.conversation_id, event.message.seq
            )
            if conversation is not None:
                event = MessageAdded(event.message, conversation)
        if event.message.kind is MessageKind.EVENT and event.conversation is not None:
            # A lifecycle change made on another process: its subscribers re-check access with
            # the conversation as changed before they are shown the event (as locally).
            self.hub.publish(ConversationChanged(event.conversation))
        self.hub.publish(event)
        if event.message.seq > 1 and event.conversation is not None:
            # (A first message is stored before its conversation: see below.)
            self._publish_notifications(
                event.message, doc.get("recipients", ()), event.conversation
            )

    async def _publish_conversation(self, event: ConversationCreated) -> None:
        """A new conversation, and the notifications of its first message: they wait for the
        conversation, which is stored after the message (a subscriber checks access on it)."""
        self.hub.publish(event)
        self.hub.remember(ConversationChanged(event.conversation).key() or "")
        conversation = event.conversation
        others = [u for u in conversation.participant_ids if u != conversation.created_by]
        if not any(self.hub.has_listeners(user_topic(u)) for u in others):
            return
        first = await self.db.messages.find_one(
            {"conversation_id": {"$eq": conversation.id}, "seq": {"$eq": 1}}
        )
        if first is not None:
            self._publish_notifications(Message.from_doc(first), others, conversation)

    def _publish_notifications(
        self, message: Message, recipients: Iterable[str], conversation: Conversation
    ) -> None:
        listening = [u for u in recipients if self.hub.has_listeners(user_topic(str(u)))]
        for notification in notification_docs(message, listening, conversation.company_id):
            self.hub.publish(
                NotificationAdded(Notification.from_doc(notification), message, conversation)
            )
