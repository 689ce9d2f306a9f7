"""Property tests of the one access policy (SPEC §3, §4) against the real database.

Hypothesis generates two firms' worth of users (kinds, companies, favorites, consistent or not)
and conversations (types, companies, participants, client-visible), inserts them in the stored
shape, and checks that the MongoDB filters select exactly what the per-document rules allow:
- `readable_filter(user)` finds exactly the conversations `can_read(user, c)` accepts;
- `readable_notifications_filter(user)` finds exactly the user's notifications of conversations
  `can_read` accepts (notifications go to participants, of conversations stored as the service
  stores them: a company exactly when the type is COMPANY or CONFIDENTIAL);
- `eligible_participants_filter(viewer, type, company)` finds exactly the users a plain oracle
  written from SPEC §4 says may be designated;
- the read grants restate `can_read` exactly, and search (SPEC §16) finds exactly the readable,
  undeleted messages containing the word, page after page, never another;
- the per-message rule (SPEC §13): for every conversation the user may read, a history query
  with `readable_messages_filter(user)` finds exactly the messages, notes and timeline events
  `can_read_message(user, c, m)` accepts (and a conversation it may not read, none).

Function-scoped fixtures are not reset between examples, so every example uses fresh firm ids
(nothing else in the database can match them) and deletes what it inserted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphql_api.conversations.inbox_query import readable_in_activity_order
from graphql_api.conversations.models import (
    Conversation,
    ConversationType,
    Message,
    MessageKind,
    new_message_doc,
)
from graphql_api.directory.models import User
from graphql_api.notifications.service import notification_docs
from graphql_api.policy import (
    audience_of,
    can_read,
    can_read_message,
    eligible_participants_filter,
    read_grants,
    readable_filter,
    readable_messages_filter,
    readable_notifications_filter,
    viewer_read_grants,
)
from graphql_api.realtime.events import inbox_topics, viewer_inbox_topics
from graphql_api.search.index import search_fields
from graphql_api.search.service import Search

FIRMS = 2
COMPANIES = 4  # companies 0-2 belong to firm 0, company 3 to firm 1
COMPANY_FIRM = [0, 0, 0, 1]
KINDS = ["PRACTITIONER", "CLIENT"]
TYPES = ["COMPANY", "CONFIDENTIAL", "PRIVATE"]

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

company_sets = st.frozensets(st.integers(0, COMPANIES - 1), max_size=COMPANIES)

users_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "firm": st.sampled_from([0, 0, 1]),
            "kind": st.sampled_from(KINDS),
            "companies": company_sets,
            "favorites": company_sets,
        }
    ),
    min_size=1,
    max_size=7,
)


def conversations_strategy(user_count: int) -> st.SearchStrategy[list[dict]]:
    return st.lists(
        st.fixed_dictionaries(
            {
                "firm": st.sampled_from([0, 0, 1]),
                "type": st.sampled_from(TYPES),
                "company": st.one_of(st.none(), st.integers(0, COMPANIES - 1)),
                "participants": st.lists(
                    st.integers(0, user_count - 1), min_size=1, max_size=user_count, unique=True
                ),
                "client_visible": st.booleans(),
            }
        ),
        max_size=10,
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict], list[dict]]:
    users = draw(users_strategy)
    return users, draw(conversations_strategy(len(users)))


class World:
    """One example's firms, companies, users and conversations as stored documents."""

    def __init__(self, users: list[dict], conversations: list[dict]) -> None:
        self.firms = [str(ObjectId()) for _ in range(FIRMS)]
        self.companies = [str(ObjectId()) for _ in range(COMPANIES)]
        self.user_docs = [self._user_doc(i, spec) for i, spec in enumerate(users)]
        self.conversation_docs = [self._conversation_doc(spec) for spec in conversations]

    def _user_doc(self, index: int, spec: dict) -> dict:
        tag = uuid.uuid4().hex
        return {
            "_id": str(ObjectId()),
            "firm_id": self.firms[spec["firm"]],
            "key": f"u{index}-{tag}",
            "kind": spec["kind"],
            "name": f"User {index}",
            "name_lower": f"user {index}",
            "email": f"u{index}-{tag}@property.test",
            "company_ids": sorted(self.companies[c] for c in spec["companies"]),
            "favorite_company_ids": sorted(self.companies[c] for c in spec["favorites"]),
        }

    def _conversation_doc(self, spec: dict) -> dict:
        participants = [self.user_docs[i]["_id"] for i in spec["participants"]]
        company = spec["company"]
        return {
            "_id": str(ObjectId()),
            "firm_id": self.firms[spec["firm"]],
            "type": spec["type"],
            "company_id": None if company is None else self.companies[company],
            "subject": "generated",
            "participant_ids": participants,
            "created_by": participants[0],
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "last_activity_ms": 1_767_225_600_000,
            "last_message_id": None,
            "client_activity_ms": 1_767_225_600_000,
            "client_last_message_id": None,
            "message_count": 0,
            "staff_count": 0,
            "client_count": 0,
            "client_visible": spec["client_visible"],
        }

    @property
    def users(self) -> list[User]:
        return [User.from_doc(doc) for doc in self.user_docs]

    async def insert(self, db) -> None:
        await db.users.insert_many(self.user_docs)
        if self.conversation_docs:
            await db.conversations.insert_many(self.conversation_docs)

    async def remove(self, db) -> None:
        await db.users.delete_many({"firm_id": {"$in": self.firms}})
        await db.conversations.delete_many({"firm_id": {"$in": self.firms}})


@PROPERTY_SETTINGS
@given(world=worlds())
async def test_readable_filter_selects_exactly_what_can_read_allows(db, world):
    users, conversations = world
    generated = World(users, conversations)
    await generated.insert(db)
    try:
        records = [Conversation.from_doc(doc) for doc in generated.conversation_docs]
        for user in generated.users:
            found = {doc["_id"] async for doc in db.conversations.find(readable_filter(user))}
            allowed = {c.id for c in records if can_read(user, c)}
            assert found == allowed, user
    finally:
        await generated.remove(db)


@PROPERTY_SETTINGS
@given(world=worlds())
async def test_readable_notifications_filter_selects_exactly_what_can_read_allows(db, world):
    users, conversations = world
    generated = World(users, conversations)
    records = [
        Conversation.from_doc(doc)
        for doc in generated.conversation_docs
        if (doc["company_id"] is None) == (doc["type"] == ConversationType.PRIVATE.value)
    ]
    notifications = [
        doc
        for c in records
        for doc in notification_docs(first_message(c), c.participant_ids, c.company_id)
    ]
    await generated.insert(db)
    if notifications:
        await db.notifications.insert_many(notifications)
    try:
        for user in generated.users:
            query = readable_notifications_filter(user)
            found = {doc["conversation_id"] async for doc in db.notifications.find(query)}
            allowed = {c.id for c in records if user.id in c.participant_ids and can_read(user, c)}
            assert found == allowed, user
    finally:
        await db.notifications.delete_many({"firm_id": {"$in": generated.firms}})
        await generated.remove(db)


def first_message(conversation: Conversation) -> Message:
    return Message(
        id=str(ObjectId()),
        firm_id=conversation.firm_id,
        conversation_id=conversation.id,
        seq=1,
        author_id=conversation.created_by,
        body="<p>x</p>",
        body_text="x",
        attachment_ids=(),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@PROPERTY_SETTINGS
@given(
    world=worlds(),
    page=st.integers(min_value=1, max_value=4),
    kind=st.sampled_from([None, *ConversationType]),
    by_company=st.booleans(),
)
async def test_inbox_pages_walk_exactly_the_readable_conversations_in_activity_order(
    db, world, page, kind, by_company
):
    users, conversations = world
    generated = World(users, conversations)
    for index, doc in enumerate(generated.conversation_docs):
        doc["last_activity_ms"] += index % 3  # equal times too: the id breaks those ties
        # Clients' activity differs (notes move the practitioners' only): another order.
        doc["client_activity_ms"] -= index % 4
    await generated.insert(db)
    try:
        records = [Conversation.from_doc(doc) for doc in generated.conversation_docs]
        company = generated.companies[0] if by_company else None
        narrowing: dict = {}
        if kind is not None:
            narrowing["type"] = {"$eq": kind.value}
        if company is not None:
            narrowing["company_id"] = {"$eq": company}
        for user in generated.users:
            expected = sorted(
                (
                    (c.activity_ms(audience_of(user)), c.id)
                    for c in records
                    if can_read(user, c)
                    and kind in (None, c.type)
                    and company in (None, c.company_id)
                ),
                reverse=True,
            )
            walked: list[tuple[int, str]] = []
            cursor = None
            while True:
                batch = await readable_in_activity_order(db, user, narrowing, cursor, page)
                walked += [(c.activity_ms(audience_of(user)), c.id) for c in batch]
                if len(batch) < page:
                    break
                cursor = walked[-1]
            assert walked == expected, user
    finally:
        await generated.remove(db)


def may_designate(viewer: User, candidate: User, kind: ConversationType, company: str) -> bool:
    """SPEC §4, written out plainly: whom `viewer` may designate (the company is one the viewer
    may pick, which the service checks before it asks the policy)."""
    if candidate.firm_id != viewer.firm_id or candidate.id == viewer.id:
        return False
    if candidate.is_practitioner:
        return True
    if kind in (ConversationType.COMPANY, ConversationType.CONFIDENTIAL):
        return company in candidate.company_ids
    if viewer.is_practitioner:
        return True
    return bool(candidate.company_ids & viewer.company_ids)


@PROPERTY_SETTINGS
@given(
    users=users_strategy,
    viewer_index=st.integers(0, 6),
    kind=st.sampled_from(list(ConversationType)),
    company=st.integers(0, COMPANIES - 1),
)
async def test_eligible_participants_filter_selects_exactly_whom_spec_allows(
    db, users, viewer_index, kind, company
):
    generated = World(users, [])
    await generated.insert(db)
    try:
        records = generated.users
        viewer = records[viewer_index % len(records)]
        company_id = None if kind is ConversationType.PRIVATE else generated.companies[company]
        query = {
            "$and": [
                eligible_participants_filter(viewer, kind, company_id),
                {"firm_id": {"$in": generated.firms}},
            ]
        }
        found = {doc["_id"] async for doc in db.users.find(query)}
        expected = {u.id for u in records if may_designate(viewer, u, kind, company_id)}
        assert found == expected
    finally:
        await generated.remove(db)


# -- search (SPEC §16) ----------------------------------------------------------------------------

WORDS = ["alpha", "beta", "gamma"]

messages_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "conversation": st.integers(0, 9),
            "words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
            "deleted": st.booleans(),
        }
    ),
    max_size=20,
)


@PROPERTY_SETTINGS
@given(world=worlds())
async def test_read_grants_restate_can_read_exactly(world):
    users, conversations = world
    generated = World(users, conversations)
    for user in generated.users:
        held = set(viewer_read_grants(user))
        for doc in generated.conversation_docs:
            conversation = Conversation.from_doc(doc)
            granted = bool(held & set(read_grants(conversation)))
            same_firm = conversation.firm_id == user.firm_id
            assert (same_firm and granted) == can_read(user, conversation), (user, conversation)


@PROPERTY_SETTINGS
@given(world=worlds())
async def test_live_inbox_routing_reaches_every_reader(world):
    """Inbox events go to the conversation's topics only (`realtime.events.inbox_topics`), not
    to the whole firm: every viewer that `can_read` the conversation must listen to one of
    them, or its inbox would miss the conversation's activity."""
    users, conversations = world
    generated = World(users, conversations)
    for user in generated.users:
        listened = viewer_inbox_topics(user)
        for doc in generated.conversation_docs:
            conversation = Conversation.from_doc(doc)
            if can_read(user, conversation):
                assert listened & set(inbox_topics(conversation)), (user, conversation)


def message_docs(generated: World, specs: list[dict]) -> list[dict]:
    """Messages in the stored shape (search fields included); deleted ones as a deletion leaves
    them: `deleted_ms` set, the body emptied, the index's words not yet cleared."""
    docs = []
    conversations = generated.conversation_docs
    for seq, spec in enumerate(specs, 1):
        if not conversations:
            break
        conversation = Conversation.from_doc(
            conversations[spec["conversation"] % len(conversations)]
        )
        text = " ".join(spec["words"])
        doc = new_message_doc(
            message_id=str(ObjectId()),
            firm_id=conversation.firm_id,
            conversation_id=conversation.id,
            seq=seq,
            author_id=conversation.created_by,
            html=f"<p>{text}</p>",
            text=text,
            attachment_ids=[],
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            recipients=[],
            client_message_id=None,
        )
        doc.update(search_fields(conversation, text))
        if spec["deleted"]:
            doc.update(deleted_ms=1_767_312_000_000, body="", body_text="")
        docs.append(doc)
    return docs


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(
    world=worlds(),
    messages=messages_strategy,
    word=st.sampled_from(WORDS),
    page=st.integers(min_value=1, max_value=3),
)
async def test_search_finds_exactly_the_readable_messages_with_the_word(
    db, world, messages, word, page
):
    users, conversations = world
    generated = World(users, conversations)
    docs = message_docs(generated, messages)
    await generated.insert(db)
    if docs:
        await db.messages.insert_many(docs)
    try:
        by_id = {doc["_id"]: Conversation.from_doc(doc) for doc in generated.conversation_docs}
        search = Search(db)
        for user in generated.users:
            expected = {
                doc["_id"]
                for doc in docs
                if "deleted_ms" not in doc
                and word in doc["body_text"].split()
                and can_read(user, by_id[doc["conversation_id"]])
            }
            walked: list[str] = []
            after = None
            while True:
                result = await search.search(user, word, first=page, after=after)
                walked += [hit.message.id for hit in result.items]
                if not result.has_next_page:
                    break
                assert len(result.items) == page  # pages stay full
                after = result.items[-1].cursor
            assert len(walked) == len(set(walked))
            assert set(walked) == expected, user
    finally:
        await generated.remove(db)
        await db.messages.delete_many({"firm_id": {"$in": generated.firms}})


@PROPERTY_SETTINGS
@given(
    world=worlds(),
    kinds=st.lists(st.sampled_from([*MessageKind, None]), min_size=1, max_size=8),
)
async def test_readable_messages_filter_selects_exactly_what_can_read_message_allows(
    db, world, kinds
):
    users, conversations = world
    generated = World(users, conversations)
    records = [Conversation.from_doc(doc) for doc in generated.conversation_docs]
    messages = []
    for c in records:
        for seq, kind in enumerate(kinds, start=1):
            doc = new_message_doc(
                message_id=str(ObjectId()),
                firm_id=c.firm_id,
                conversation_id=c.id,
                seq=seq,
                author_id=c.created_by,
                html="<p>x</p>",
                text="x",
                attachment_ids=[],
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                recipients=[],
                client_message_id=None,
                kind=kind or MessageKind.MESSAGE,
            )
            if kind is None:
                del doc["kind"]  # stored before kinds existed: a message
            messages.append(doc)
    await generated.insert(db)
    if messages:
        await db.messages.insert_many(messages)
    try:
        by_conversation = {c.id: c for c in records}
        for user in generated.users:
            readable = {c.id for c in records if can_read(user, c)}
            found = {
                doc["_id"]
                async for doc in db.messages.find(
                    {
                        "conversation_id": {"$in": sorted(readable)},
                        **readable_messages_filter(user),
                    }
                )
            }
            allowed = {
                doc["_id"]
                for doc in messages
                if can_read_message(
                    user, by_conversation[doc["conversation_id"]], Message.from_doc(doc)
                )
            }
            assert found == allowed, user
    finally:
        await db.messages.delete_many({"firm_id": {"$in": generated.firms}})
        await generated.remove(db)
