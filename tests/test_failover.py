"""The driver's fail-over paths, against a scripted MongoDB wire peer (`tests/wire_peer.py`).

The embedded server never steps down, never loses a connection mid-write and never rolls its
change-stream history over, so these paths are played by a peer that answers what a replica set
answers then: a connection dropped before the answer, `NotWritablePrimary`, an error labelled
`ResumableChangeStreamError`, and `ChangeStreamHistoryLost` (286). The product code under test is
the real one (the attachment store, the notifications, the change-stream source), on a real
PyMongo client over TCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from bson import ObjectId

from graphql_api.attachments.store import AttachmentStore
from graphql_api.conversations.read_marks import move_read_marks
from graphql_api.database import Db, connect, database_of
from graphql_api.directory.models import User, UserKind
from graphql_api.notifications.service import Notifications
from graphql_api.realtime.events import Resync, UserChanged, conversation_topic, user_topic
from graphql_api.realtime.hub import EventHub, Subscriber
from graphql_api.realtime.sources import ChangeStreamSource
from tests.wire_peer import HANG_UP, QUIET, Command, WirePeer, command_name, cursor, error

WAIT = 15.0
FIRM, ALICE = str(ObjectId()), str(ObjectId())
ALICE_USER = User(
    id=ALICE,
    firm_id=FIRM,
    key="alice",
    kind=UserKind.PRACTITIONER,
    name="Alice",
    email="alice@acme.test",
    company_ids=frozenset(),
    favorite_company_ids=frozenset(),
)


@pytest.fixture
async def peer() -> AsyncIterator[WirePeer]:
    async with WirePeer() as running:
        yield running


@pytest.fixture
async def db(peer: WirePeer) -> AsyncIterator[Db]:
    client = connect(peer.uri)
    yield database_of(client)
    await client.close()


def failing_first(name: str, first: object, then: object) -> object:
    """A script whose first `name` command gets `first`, the later ones `then`."""
    seen = 0

    def script(command: Command) -> object:
        nonlocal seen
        if command_name(command) != name:
            return QUIET
        seen += 1
        return first if seen == 1 else then

    return script


# -- writes -----------------------------------------------------------------------------------


async def test_a_read_mark_write_cut_off_by_a_step_down_is_retried_once_by_the_driver(peer, db):
    not_primary = error(10107, "NotWritablePrimary", "RetryableWriteError")
    peer.script = failing_first("update", not_primary, {"ok": 1, "n": 1, "nModified": 1})
    await move_read_marks(db, [(ALICE, str(ObjectId()), 3, 3, 3)])
    first, retry = peer.commands("update")
    # The same statement under the same transaction number: the server applies it once.
    assert (retry["lsid"], retry["txnNumber"]) == (first["lsid"], first["txnNumber"])
    assert retry["writeConcern"] == {"w": "majority", "j": True}


async def test_an_attachment_claim_cut_off_by_a_dropped_connection_still_claims_the_uploads(
    peer, db
):
    # The first attempt reached the server and was applied; its answer was lost. The second
    # attempt changes nothing, and the uploads count as claimed by this message.
    peer.script = failing_first("update", HANG_UP, {"ok": 1, "n": 2, "nModified": 0})
    store = AttachmentStore(db)
    uploads = [str(ObjectId()), str(ObjectId())]
    assert await store.claim(ALICE_USER, uploads, str(ObjectId()), str(ObjectId()))
    first, retry = peer.commands("update")
    assert first["updates"] == retry["updates"]


async def test_marking_notifications_read_through_a_dropped_connection_answers_how_many(peer, db):
    marked = cursor("messager.notifications", [{"_id": 1, "n": 3}])

    def script(command: Command) -> object:
        if command_name(command) == "update":
            return HANG_UP if len(peer.commands("update")) == 1 else {"ok": 1, "n": 0}
        if command_name(command) == "aggregate":
            return marked
        return QUIET

    peer.script = script
    assert await Notifications(db).mark_read(ALICE_USER, None) == 3
    assert len(peer.commands("update")) == 2


# -- change streams ---------------------------------------------------------------------------


def token(label: str) -> Command:
    return {"_data": label}


def user_change(label: str, user_id: str) -> Command:
    return {
        "_id": token(label),
        "operationType": "update",
        "ns": {"db": "messager", "coll": "users"},
        "documentKey": {"_id": user_id},
        "updateDescription": {"updatedFields": {"favorite_company_ids": []}},
    }


class UsersStream:
    """Scripts the `users` change stream as a list of getMore answers; the other collections'
    streams stay quiet. Every aggregate on `users` opens cursor 7 and starts the list again from
    `reopened`, so a test sees where each reopening started from."""

    def __init__(self, answers: list[Command], reopened: list[Command] | None = None) -> None:
        self.answers = list(answers)
        self.reopened = reopened if reopened is not None else []
        self.opens: list[Command] = []
        self.reopening = asyncio.Event()

    def __call__(self, command: Command) -> object:
        name = command_name(command)
        if name == "aggregate" and "$changeStream" in command["pipeline"][0]:
            if command["aggregate"] == "users":
                self.opens.append(command["pipeline"][0]["$changeStream"])
                if len(self.opens) > 1:
                    self.answers = list(self.reopened)
                    self.reopening.set()
                return cursor("messager.users", [], 7, resume_token=token("open"))
            return cursor(f"messager.{command['aggregate']}", [], 8, resume_token=token("q"))
        if name == "getMore":
            if command["collection"] == "users" and self.answers:
                return self.answers.pop(0)
            return cursor(f"messager.{command['collection']}", [], 8, False, token("q"))
        return QUIET


def batch(events: list[Command], resume: str) -> Command:
    return cursor("messager.users", events, 7, first=False, resume_token=token(resume))


async def next_event(subscriber: Subscriber) -> object:
    return await asyncio.wait_for(subscriber.next(), WAIT)


async def watching(db: Db, hub: EventHub) -> ChangeStreamSource:
    source = ChangeStreamSource(db, hub)
    source.start()
    await asyncio.wait_for(source.ready.wait(), WAIT)
    return source


async def test_a_resumable_error_resumes_the_stream_after_its_latest_position(peer, db):
    bob = str(ObjectId())
    stream = UsersStream(
        [
            batch([user_change("E1", ALICE)], "E1"),
            batch([], "T2"),  # nothing happened, but the server's position moved on
            error(11602, "InterruptedDueToReplStateChange", "ResumableChangeStreamError"),
        ],
        reopened=[batch([user_change("E2", bob)], "E2")],
    )
    peer.script = stream
    hub = EventHub()
    alice, bob_subscriber = hub.subscribe([user_topic(ALICE)]), hub.subscribe([user_topic(bob)])
    source = await watching(db, hub)
    try:
        assert await next_event(alice) == UserChanged(ALICE)
        assert await next_event(bob_subscriber) == UserChanged(bob)
    finally:
        await source.stop()
    resumed = stream.opens[1]
    assert (resumed.get("resumeAfter") or resumed.get("startAfter")) == token("T2")


async def test_a_stream_the_driver_gives_up_on_reopens_after_its_latest_position(peer, db):
    bob = str(ObjectId())
    stream = UsersStream(
        [
            batch([user_change("E1", ALICE)], "E1"),
            batch([], "T2"),
            error(96, "OperationFailed"),  # not resumable: the driver raises it
        ],
        reopened=[batch([user_change("E2", bob)], "E2")],
    )
    peer.script = stream
    hub = EventHub()
    bob_subscriber = hub.subscribe([user_topic(bob)])
    source = await watching(db, hub)
    try:
        assert await next_event(bob_subscriber) == UserChanged(bob)
    finally:
        await source.stop()
    # Not from the last event (E1): from the position the quiet stream had reached since.
    assert stream.opens[1] == {"startAfter": token("T2"), "fullDocument": "updateLookup"}


async def test_a_stream_whose_history_is_lost_restarts_from_now_and_resynchronises(peer, db):
    stream = UsersStream(
        [batch([user_change("E1", ALICE)], "E1"), error(286, "ChangeStreamHistoryLost")],
    )
    peer.script = stream
    hub = EventHub()
    conversation = conversation_topic(str(ObjectId()))
    alice, reader = hub.subscribe([user_topic(ALICE)]), hub.subscribe([conversation])
    flushed: list[str] = []
    source = ChangeStreamSource(db, hub)
    source.on_resync.append(flushed.append)
    source.start()
    try:
        assert await next_event(alice) == UserChanged(ALICE)
        # Every subscriber re-reads what it shows; the caches were told first.
        assert await next_event(alice) == Resync(user_topic(ALICE))
        assert await next_event(reader) == Resync(conversation)
        assert flushed == ["users"]
        await asyncio.wait_for(stream.reopening.wait(), WAIT)
    finally:
        await source.stop()
    # Reopened from now, never from the position the server said is gone.
    assert stream.opens[1] == {"fullDocument": "updateLookup"}
